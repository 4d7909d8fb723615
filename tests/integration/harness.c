#include <sqlite3.h>

#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mosquitto.h>

#define MAX_MESSAGES 20000

const char *harness_build_dir(void)
{
	const char *b = getenv("B");
	return b && *b ? b : "build";
}

long long harness_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void harness_sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

long long harness_db_ll(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	long long v = -1;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

int harness_free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int port = -1;
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static bool port_open(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				.sin_port = htons((uint16_t)port)};
	bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

static void rm_rf(const char *dir)
{
	if (!dir[0] || strncmp(dir, "/tmp/", 5) != 0)
		return;
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "harness: could not remove %s\n", dir);
}

/* Every child still running when the test program ends is killed: a
 * failed assertion skips a test's clean-up, and no broker or daemon may
 * outlive the test that started it. */
#define CHILDREN_MAX 256
static pid_t children[CHILDREN_MAX];

static void kill_children(void)
{
	for (int i = 0; i < CHILDREN_MAX; i++) {
		if (children[i] > 0 && waitpid(children[i], NULL, WNOHANG) == 0) {
			kill(children[i], SIGKILL);
			waitpid(children[i], NULL, 0);
		}
	}
}

static void remember_child(pid_t pid)
{
	static bool registered;
	if (!registered) {
		atexit(kill_children);
		registered = true;
	}
	for (int i = 0; i < CHILDREN_MAX; i++) {
		if (children[i] <= 0 || kill(children[i], 0) != 0) {
			children[i] = pid;
			return;
		}
	}
}

static pid_t spawn(char *const argv[], const char *log_path)
{
	pid_t pid = fork();
	if (pid > 0)
		remember_child(pid);
	if (pid != 0)
		return pid;
	int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (fd >= 0) {
		dup2(fd, 1);
		dup2(fd, 2);
		close(fd);
	}
	execvp(argv[0], argv);
	_exit(127);
}

/* Wait for pid up to timeout_ms; status as documented in harness.h. */
static int reap(pid_t pid, int timeout_ms)
{
	long long until = harness_now_ms() + timeout_ms;
	int status;
	while (harness_now_ms() < until) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		if (r < 0)
			return -1;
		harness_sleep_ms(10);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return -1;
}

/* -- broker ------------------------------------------------------------------ */

static int broker_launch(struct broker *b)
{
	char conf[300], log[300];
	snprintf(conf, sizeof(conf), "%s/mosquitto.conf", b->dir);
	snprintf(log, sizeof(log), "%s/mosquitto.log", b->dir);
	FILE *f = fopen(conf, "w");
	if (!f)
		return -1;
	fprintf(f, "listener %d 127.0.0.1\npersistence false\nset_tcp_nodelay true\n%s%s\n", b->port,
		strstr(b->extra, "allow_anonymous") ? "" : "allow_anonymous true\n", b->extra);
	fclose(f);
	char *argv[] = {"mosquitto", "-c", conf, NULL};
	b->pid = spawn(argv, log);
	for (int i = 0; i < 300; i++) {
		if (port_open(b->port))
			return 0;
		if (waitpid(b->pid, NULL, WNOHANG) == b->pid)
			break; /* the port was taken meanwhile */
		harness_sleep_ms(10);
	}
	kill(b->pid, SIGKILL);
	waitpid(b->pid, NULL, 0);
	b->pid = 0;
	return -1;
}

int broker_start(struct broker *b)
{
	return broker_start_with(b, NULL);
}

int broker_start_with(struct broker *b, const char *extra_conf)
{
	memset(b, 0, sizeof(*b));
	snprintf(b->extra, sizeof(b->extra), "%s", extra_conf ? extra_conf : "");
	snprintf(b->dir, sizeof(b->dir), "/tmp/hearth-broker-XXXXXX");
	if (!mkdtemp(b->dir))
		return -1;
	for (int attempt = 0; attempt < 5; attempt++) {
		b->port = harness_free_port();
		if (b->port > 0 && broker_launch(b) == 0)
			return 0;
	}
	return -1;
}

int broker_restart(struct broker *b)
{
	for (int attempt = 0; attempt < 100; attempt++) {
		if (broker_launch(b) == 0)
			return 0;
		harness_sleep_ms(50); /* the old socket may linger for a moment */
	}
	return -1;
}

void broker_kill(struct broker *b)
{
	if (b->pid > 0) {
		kill(b->pid, SIGKILL);
		waitpid(b->pid, NULL, 0);
		b->pid = 0;
	}
}

void broker_stop(struct broker *b)
{
	if (b->pid > 0) {
		kill(b->pid, SIGTERM);
		reap(b->pid, 3000);
		b->pid = 0;
	}
	rm_rf(b->dir);
}

/* -- hearthd ---------------------------------------------------------------------- */

static int write_conf(struct hearthd *h)
{
	char cwd[PATH_MAX];
	if (!getcwd(cwd, sizeof(cwd)))
		return -1;
	const char *b = harness_build_dir();
	FILE *f = fopen(h->conf, "w");
	if (!f)
		return -1;
	fprintf(f,
		"[mqtt]\nhost = 127.0.0.1\nport = %d\nbase_topic = hearth\nclient_id = hearthd-test-%d\n"
		"keepalive = 5\n%s"
		"[store]\npath = %s\ncommit_interval_ms = 100\n"
		"[plugins]\ndir = %s%s%s/plugins\n",
		h->port, (int)getpid(), h->mqtt_extra, h->db, b[0] == '/' ? "" : cwd,
		b[0] == '/' ? "" : "/", b);
	fprintf(f, "enable = %s\n[log]\nlevel = debug\n%s\n", h->enable, h->extra);
	fclose(f);
	return 0;
}

static int log_count(const struct hearthd *h, const char *text)
{
	FILE *f = fopen(h->log, "r");
	if (!f)
		return 0;
	char line[4096];
	int n = 0;
	while (fgets(line, sizeof(line), f))
		n += strstr(line, text) != NULL;
	fclose(f);
	return n;
}

/* Ready means: READY was reached in this run (the log line), which comes
 * after the hub published its retained state. */
static int launch(struct hearthd *h)
{
	char bin[PATH_MAX];
	snprintf(bin, sizeof(bin), "%s/hearthd", harness_build_dir());
	int before = log_count(h, "ready in");
	/* HEARTH_VALGRIND=1: the daemon runs under memcheck; any error or definite
	 * leak makes it exit 99, which the tests' clean-exit checks catch */
	bool vg = getenv("HEARTH_VALGRIND") && *getenv("HEARTH_VALGRIND") == '1';
	char *plain[] = {bin, "-c", h->conf, NULL};
	char *grind[] = {"valgrind", "-q", "--error-exitcode=99", "--leak-check=full",
			 "--errors-for-leak-kinds=definite", "--show-leak-kinds=definite", bin, "-c",
			 h->conf, NULL};
	h->pid = spawn(vg ? grind : plain, h->log);
	long long until = harness_now_ms() + (vg ? 30000 : 5000);
	while (harness_now_ms() < until) {
		if (log_count(h, "ready in") > before)
			return 0;
		int status;
		if (waitpid(h->pid, &status, WNOHANG) == h->pid) {
			/* a start the daemon refused: how it ended is part of the test */
			h->last_status = WIFEXITED(status) ? WEXITSTATUS(status)
							   : 128 + WTERMSIG(status);
			h->pid = 0;
			return -1;
		}
		harness_sleep_ms(10);
	}
	return -1;
}

int hearthd_start(struct hearthd *h, int port, const char *extra)
{
	return hearthd_start_plugins(h, port, "virtual", extra);
}

int hearthd_start_plugins(struct hearthd *h, int port, const char *enable, const char *extra)
{
	return hearthd_start_full(h, port, NULL, enable, extra);
}

int hearthd_start_full(struct hearthd *h, int port, const char *mqtt_extra, const char *enable,
		       const char *extra)
{
	memset(h, 0, sizeof(*h));
	h->port = port;
	snprintf(h->mqtt_extra, sizeof(h->mqtt_extra), "%s", mqtt_extra ? mqtt_extra : "");
	snprintf(h->enable, sizeof(h->enable), "%s", enable ? enable : "");
	snprintf(h->extra, sizeof(h->extra), "%s", extra ? extra : "");
	snprintf(h->dir, sizeof(h->dir), "/tmp/hearth-test-XXXXXX");
	if (!mkdtemp(h->dir))
		return -1;
	snprintf(h->conf, sizeof(h->conf), "%s/hearth.conf", h->dir);
	snprintf(h->db, sizeof(h->db), "%s/hearth.db", h->dir);
	snprintf(h->log, sizeof(h->log), "%s/hearthd.log", h->dir);
	if (write_conf(h))
		return -1;
	return launch(h);
}

int hearthd_restart(struct hearthd *h)
{
	if (write_conf(h))
		return -1;
	return launch(h);
}

int hearthd_signal_wait(struct hearthd *h, int sig, int timeout_ms)
{
	if (h->pid <= 0)
		return -1;
	kill(h->pid, sig);
	if (getenv("HEARTH_VALGRIND") && *getenv("HEARTH_VALGRIND") == '1')
		timeout_ms *= 10; /* memcheck checks leaks at exit, slowly */
	int st = reap(h->pid, timeout_ms);
	h->pid = 0;
	h->last_status = st;
	return st;
}

static void dump_log(const struct hearthd *h)
{
	FILE *f = fopen(h->log, "r");
	char line[4096];
	fprintf(stderr, "---- %s ----\n", h->log);
	while (f && fgets(line, sizeof(line), f))
		fputs(line, stderr);
	if (f)
		fclose(f);
	fprintf(stderr, "---- end ----\n");
}

int hearthd_cleanup(struct hearthd *h)
{
	if (h->pid > 0)
		h->last_status = hearthd_signal_wait(h, SIGTERM, 3000);
	int status = h->last_status;
	if (status != 0)
		dump_log(h);
	if (getenv("HEARTH_KEEP_TEST_DIRS"))
		fprintf(stderr, "harness: kept %s\n", h->dir);
	else
		rm_rf(h->dir);
	return status;
}

bool hearthd_log_contains(const struct hearthd *h, const char *text)
{
	FILE *f = fopen(h->log, "r");
	if (!f)
		return false;
	char line[4096];
	bool found = false;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, text) != NULL;
	fclose(f);
	return found;
}

/* -- client -------------------------------------------------------------------------- */

struct message {
	char *topic;
	char *payload;
	bool retained;
};

struct client {
	struct mosquitto *mosq;
	struct message *msgs;
	int n;
	int transaction;
};

static void on_msg(struct mosquitto *m, void *obj, const struct mosquitto_message *msg)
{
	(void)m;
	struct client *c = obj;
	if (c->n >= MAX_MESSAGES)
		return;
	struct message *x = &c->msgs[c->n++];
	x->topic = strdup(msg->topic);
	x->payload = malloc((size_t)msg->payloadlen + 1);
	if (msg->payloadlen > 0)
		memcpy(x->payload, msg->payload, (size_t)msg->payloadlen);
	x->payload[msg->payloadlen] = '\0';
	x->retained = msg->retain;
}

struct client *client_new(int port)
{
	return client_new_auth(port, NULL, NULL);
}

struct client *client_new_auth(int port, const char *user, const char *password)
{
	static bool init;
	if (!init) {
		mosquitto_lib_init();
		init = true;
	}
	struct client *c = calloc(1, sizeof(*c));
	c->msgs = calloc(MAX_MESSAGES, sizeof(*c->msgs));
	c->mosq = mosquitto_new(NULL, true, c);
	if (!c->mosq || !c->msgs) {
		client_free(c);
		return NULL;
	}
	mosquitto_message_callback_set(c->mosq, on_msg);
	mosquitto_int_option(c->mosq, MOSQ_OPT_TCP_NODELAY, 1);
	if (user)
		mosquitto_username_pw_set(c->mosq, user, password);
	for (int i = 0; i < 50; i++) {
		if (mosquitto_connect(c->mosq, "127.0.0.1", port, 30) == MOSQ_ERR_SUCCESS)
			return c;
		harness_sleep_ms(50);
	}
	client_free(c);
	return NULL;
}

void client_clear(struct client *c)
{
	for (int i = 0; i < c->n; i++) {
		free(c->msgs[i].topic);
		free(c->msgs[i].payload);
	}
	c->n = 0;
}

void client_free(struct client *c)
{
	if (!c)
		return;
	if (c->msgs)
		client_clear(c);
	if (c->mosq) {
		mosquitto_disconnect(c->mosq);
		mosquitto_destroy(c->mosq);
	}
	free(c->msgs);
	free(c);
}

void client_pump(struct client *c, int ms)
{
	long long until = harness_now_ms() + ms;
	while (harness_now_ms() < until) {
		if (mosquitto_loop(c->mosq, 10, 100) != MOSQ_ERR_SUCCESS) {
			mosquitto_reconnect(c->mosq);
			harness_sleep_ms(10);
		}
	}
}

int client_subscribe(struct client *c, const char *filter)
{
	int rc = mosquitto_subscribe(c->mosq, NULL, filter, 1);
	client_pump(c, 50); /* let the SUBACK come back */
	return rc == MOSQ_ERR_SUCCESS ? 0 : -1;
}

int client_publish(struct client *c, const char *topic, const char *payload, bool retain)
{
	int rc = mosquitto_publish(c->mosq, NULL, topic, payload ? (int)strlen(payload) : 0, payload,
				   1, retain);
	client_pump(c, 5);
	return rc == MOSQ_ERR_SUCCESS ? 0 : -1;
}

static int find(struct client *c, int from, const char *topic, const char *contains)
{
	for (int i = from; i < c->n; i++)
		if (strcmp(c->msgs[i].topic, topic) == 0 &&
		    (!contains || strstr(c->msgs[i].payload, contains)))
			return i;
	return -1;
}

/* Under valgrind the daemon runs many times slower: every wait stretches. */
bool harness_valgrind(void)
{
	const char *v = getenv("HEARTH_VALGRIND");
	return v && *v == '1';
}

static int stretch(int ms)
{
	return getenv("HEARTH_VALGRIND") && *getenv("HEARTH_VALGRIND") == '1' ? ms * 8 : ms;
}

char *client_wait(struct client *c, const char *topic, const char *contains, int timeout_ms)
{
	long long until = harness_now_ms() + stretch(timeout_ms);
	int i;
	while ((i = find(c, 0, topic, contains)) < 0 && harness_now_ms() < until)
		mosquitto_loop(c->mosq, 10, 100);
	if (i < 0)
		return NULL;
	char *p = strdup(c->msgs[i].payload);
	/* consumed: a later wait for the same thing needs a new message */
	c->msgs[i].topic[0] = '\0';
	return p;
}

cJSON *client_wait_json(struct client *c, const char *topic, const char *contains, int timeout_ms)
{
	char *p = client_wait(c, topic, contains, timeout_ms);
	cJSON *j = p ? cJSON_Parse(p) : NULL;
	free(p);
	return j;
}

int client_count_containing(struct client *c, const char *text)
{
	int n = 0;
	for (int i = 0; i < c->n; i++)
		if (strstr(c->msgs[i].payload, text) || strstr(c->msgs[i].topic, text))
			n++;
	return n;
}

int client_count(struct client *c, const char *topic)
{
	int n = 0;
	for (int i = 0; i < c->n; i++)
		if (strcmp(c->msgs[i].topic, topic) == 0)
			n++;
	return n;
}

char *client_retained(int port, const char *topic, int timeout_ms)
{
	struct client *c = client_new(port);
	if (!c)
		return NULL;
	client_subscribe(c, topic);
	char *p = client_wait(c, topic, NULL, timeout_ms);
	client_free(c);
	return p;
}

cJSON *client_request(struct client *c, const char *path, const char *json_without_braces,
		      int timeout_ms)
{
	char topic[300], resp_topic[300], tr[32], payload[8192];
	snprintf(topic, sizeof(topic), "hearth/bridge/request/%s", path);
	snprintf(resp_topic, sizeof(resp_topic), "hearth/bridge/response/%s", path);
	snprintf(tr, sizeof(tr), "\"tr-%d-%d\"", (int)getpid(), ++c->transaction);
	snprintf(payload, sizeof(payload), "{%s%s\"transaction\":%s}", json_without_braces,
		 json_without_braces[0] ? "," : "", tr);
	client_subscribe(c, resp_topic);
	client_publish(c, topic, payload, false);
	return client_wait_json(c, resp_topic, tr, timeout_ms);
}
