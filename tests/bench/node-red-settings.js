// Node-RED settings for the hearth benchmark (tests/bench/run.sh).
// Everything stays on 127.0.0.1: the HTTP side listens there only (and the
// editor is off), telemetry and update checks are off, nothing is installed
// at run time. The broker's port, the QoS and the folders come from the
// environment the runner sets.
module.exports = {
    uiHost: "127.0.0.1",
    uiPort: parseInt(process.env.BENCH_UI_PORT || "0", 10),
    userDir: process.env.BENCH_USER_DIR,
    flowFile: process.env.BENCH_FLOW_FILE,
    flowFilePretty: false,
    credentialSecret: false,
    disableEditor: true,
    httpAdminRoot: false,
    httpNodeRoot: false,
    httpStatic: false,
    diagnostics: { enabled: false, ui: false },
    runtimeState: { enabled: false, ui: false },
    telemetry: { enabled: false, updateNotification: false },
    externalModules: {
        autoInstall: false,
        palette: { allowInstall: false, allowUpdate: false, allowUpload: false },
        modules: { allowInstall: false }
    },
    functionExternalModules: false,
    editorTheme: { projects: { enabled: false } },
    // what a user gets by default: info on the console
    logging: { console: { level: "info", metrics: false, audit: false } }
};
