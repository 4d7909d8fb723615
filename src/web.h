/*
 * web: the dashboard, served by hearthd on its own libuv loop with
 * libwebsockets (its libuv event library on a foreign loop).
 *
 * HTTP: the files of [web] root, and POST /api/login, /api/logout,
 * GET /api/session. WebSocket: /ws, protocol "hearth", frames as in
 * web_frame.h. The web module is one more MQTT client of the hub's broker
 * (client id "<mqtt.client_id>-web"): a browser's publish frame is published
 * exactly as any MQTT client's message and the hub handles it through
 * api.c, so nothing is validated twice. The module subscribes to
 * "<base>/#" once and keeps the retained messages it has seen, so every
 * browser subscription gets the retained state first, then live updates.
 *
 * Login: with [web] password_file, POST /api/login checks the password
 * against its crypt(3) hash on the thread pool, and a right one gets a
 * random session token in an HttpOnly, SameSite=Strict cookie, which every
 * later file and WebSocket request must carry. Failed logins are limited
 * per address and overall (web_auth.h). Logins and WebSockets must come
 * with an Origin equal to the Host they were sent to. Without a
 * password_file the dashboard listens on loopback only, whatever [web]
 * listen says, and refuses Host names other than loopback ones.
 *
 * Edge module: logs. Loop thread only.
 */
#ifndef HEARTH_WEB_H
#define HEARTH_WEB_H

struct hearth_hub;
struct web;

/* Start serving per hub->config->web: bind, connect to the broker. 0, or
 * a negative errno (the address is taken, a file is unusable: logged). */
int web_start(struct hearth_hub *hub, struct web **out);

/* Close the listener and every connection, disconnect from the broker.
 * Handles close on later loop turns. NULL is accepted. */
void web_stop(struct web *web);

/* Free; after web_stop and the loop has run, or instead of it. Not from
 * inside a loop callback (it runs the loop to finish closing). NULL ok. */
void web_free(struct web *web);

/* The port actually listened on (tests use listen = 127.0.0.1:0). */
int web_port(const struct web *web);

#endif
