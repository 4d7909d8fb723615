'use strict';
// The login page: one password, a session cookie the server sets.
(function () {
  const form = document.getElementById('login');
  const error = document.getElementById('login-error');
  const button = document.getElementById('login-button');

  function show(text) {
    error.textContent = text;
    error.hidden = !text;
  }

  fetch('/api/session', { credentials: 'same-origin' })
    .then((r) => r.json())
    .then((s) => { if (s.authenticated) location.replace('/'); })
    .catch(() => {});

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    show('');
    button.disabled = true;
    try {
      const r = await fetch('/api/login', {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ password: form.password.value }),
      });
      const body = await r.json().catch(() => ({}));
      if (r.ok) {
        location.replace('/');
        return;
      }
      let text = body.error || 'Log-in failed (' + r.status + ')';
      const wait = r.headers.get('Retry-After');
      if (r.status === 429 && wait) text += ' (' + wait + ' s)';
      show(text);
      form.password.select();
    } catch (e) {
      show('The hub cannot be reached.');
    } finally {
      button.disabled = false;
    }
  });
})();
