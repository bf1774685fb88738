//! Operating the shim: exact metrics after a known sequence, readiness that follows the
//! upstream, JSON logs without secrets, the probe, SIGHUP reload, and a docker-compose.yml that
//! matches the binaries' real flags.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const START: &str = "Sora_20161101.StartRecording";

#[tokio::test]
async fn metrics_show_exact_counts_after_a_known_sequence() {
    let (sim, shim, _) = start_pair(|o| o.env("SORA_SHIM__RECONCILER__INTERVAL_MS", "600000")).await;
    assert_eq!(api(&shim.url, START, json!({"channel_id": "m", "expire_time": 0})).await.status, 200);
    assert_eq!(api(&shim.url, START, json!({"channel_id": "m", "expire_time": 0})).await.status, 400);
    assert_eq!(api(&shim.url, START, json!({"channel_id": "m2", "expire_time": 0})).await.status, 200);
    assert_eq!(post(&shim.url, "/", Some("Sora_20171010.GetStatsReport"), "", &[]).await.status, 200);
    connect(&sim, "m").await;
    let text = metrics_text(&shim).await;
    let expect = [
        (r#"sora_shim_requests_total{surface="api",route="translated",outcome="2xx"}"#, 2.0),
        (r#"sora_shim_requests_total{surface="api",route="translated",outcome="4xx"}"#, 1.0),
        (r#"sora_shim_requests_total{surface="api",route="passthrough",outcome="2xx"}"#, 1.0),
        (r#"sora_shim_requests_total{surface="session_hook",route="translated",outcome="2xx"}"#, 1.0),
        (r#"sora_shim_legacy_calls_total{target="Sora_20161101.StartRecording"}"#, 3.0),
        (r#"sora_shim_upstream_request_duration_seconds_count{call="start_recording"}"#, 2.0),
        (r#"sora_shim_upstream_request_duration_seconds_count{call="passthrough"}"#, 1.0),
        (r#"sora_shim_upstream_errors_total{call="start_recording",kind="unavailable"}"#, f64::NAN),
        ("sora_shim_session_webhook_merges_total", 1.0),
        ("sora_shim_active_orders", 2.0),
        (r#"sora_shim_request_duration_seconds_count{surface="api",route="translated"}"#, 3.0),
    ];
    for (series, value) in expect {
        let found = sample(&text, series);
        if value.is_nan() {
            assert_eq!(found, None, "{series} should not exist:\n{text}");
        } else {
            assert_eq!(found, Some(value), "{series}:\n{text}");
        }
    }
    // An upstream answering 5xx is counted as a failed call.
    add_fault(&sim, json!({"target": "Sora_20231220.ListSessions", "status": 500, "body": "{}"})).await;
    api(&shim.url, "Sora_20161101.ListArchiving", json!({})).await.assert_legacy_error(502, "UPSTREAM-ERROR");
    let text = metrics_text(&shim).await;
    assert_eq!(
        sample(&text, r#"sora_shim_upstream_errors_total{call="list_sessions",kind="error"}"#),
        Some(1.0),
        "{text}"
    );
    // No unbounded labels: channel ids and client addresses never appear.
    assert!(!text.contains("\"m\"") && !text.contains("127.0.0.1"), "{text}");
}

#[tokio::test]
async fn reconciler_work_and_legs_are_counted() {
    // No session webhook: only the reconciler can switch recording on and notice a session's end.
    let sim = start_sim(&[]);
    let shim = start_shim(&ShimOptions::new(&sim.url).env("SORA_SHIM__RECONCILER__INTERVAL_MS", "100"));
    api(&shim.url, START, json!({"channel_id": "r", "expire_time": 0})).await;
    api(&shim.url, START, json!({"channel_id": "e", "expire_time": 1})).await;
    let metric = |text: &str, action: &str| {
        sample(text, &format!(r#"sora_shim_reconciler_actions_total{{action="{action}"}}"#)).unwrap_or(0.0)
    };
    let connection = connect(&sim, "r").await;
    wait_recording(&sim, "r", true).await;
    let text = metrics_text(&shim).await;
    assert_eq!(metric(&text, "started"), 1.0, "{text}");
    assert_eq!(sample(&text, "sora_shim_open_legs"), Some(1.0), "{text}");
    disconnect(&sim, &connection).await;
    // A leg younger than the reconciler's 10 s grace is not ended on a missing session: allow more.
    let text = wait_for("the leg ended and the expired order swept", Duration::from_secs(30), || async {
        let text = metrics_text(&shim).await;
        (metric(&text, "legs_ended") >= 1.0 && metric(&text, "swept") >= 1.0).then_some(text)
    })
    .await;
    assert_eq!(metric(&text, "started"), 1.0, "{text}");
    assert_eq!(metric(&text, "legs_ended"), 1.0, "{text}");
    assert_eq!(metric(&text, "swept"), 1.0, "{text}");
    assert_eq!(metric(&text, "stopped"), 0.0, "{text}");
    assert_eq!(sample(&text, "sora_shim_open_legs"), Some(0.0), "{text}");
    assert_eq!(sample(&text, "sora_shim_active_orders"), Some(1.0), "{text}");
}

#[tokio::test]
async fn health_and_readiness_follow_the_upstream() {
    let mut sim = start_sim(&[]);
    let sim_address = sim.addr().to_owned();
    let shim = start_shim(&ShimOptions::new(&sim.url));
    let health = get_json(&format!("{}/health", shim.url)).await;
    assert_eq!(health["status"], "ok");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    let ready = get_json(&format!("{}/ready", shim.url)).await;
    assert_eq!(
        (ready["ready"].as_bool(), ready["store"].as_str(), ready["upstream"].as_str()),
        (Some(true), Some("ok"), Some("ok"))
    );

    sim.kill();
    let request = || {
        http::Request::builder()
            .uri(format!("{}/ready", shim.url))
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap()
    };
    let not_ready = send(request()).await;
    assert_eq!(not_ready.status, 503);
    let body = not_ready.json();
    assert_eq!((body["ready"].as_bool(), body["store"].as_str()), (Some(false), Some("ok")));
    assert_ne!(body["upstream"], "ok");

    let _sim = {
        let dir = temp_dir("sim-again");
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_sora-sim"));
        command
            .args(["--listen", &sim_address])
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.join("log")).unwrap());
        ChildGuard(command.spawn().unwrap())
    };
    wait_for("readiness to return", Duration::from_secs(10), || async {
        let reply = send(request()).await;
        (reply.status == 200).then_some(())
    })
    .await;
}

struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_shims_own_paths_never_reach_the_upstream() {
    let sim = start_sim(&[]);
    let shim = start_shim(&ShimOptions::new(&sim.url));
    for (method, path, status, name) in [
        ("POST", "/health", 405, "METHOD-NOT-ALLOWED"),
        ("PUT", "/metrics", 405, "METHOD-NOT-ALLOWED"),
        ("GET", "/hooks/session", 405, "METHOD-NOT-ALLOWED"),
        ("GET", "/shim/usage/x", 404, "NOT-FOUND"),
        ("POST", "/hooks/unknown", 404, "NOT-FOUND"),
    ] {
        let request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", shim.url))
            .body(http_body_util::Full::new(bytes::Bytes::new()));
        send(request.unwrap()).await.assert_legacy_error(status, name);
    }
    let all = get_json(&format!("{}/sim/requests", sim.url)).await;
    let paths: Vec<&str> = all.as_array().unwrap().iter().map(|entry| entry["path"].as_str().unwrap()).collect();
    assert!(paths.iter().all(|path| *path == "/"), "only the reconciler's own calls reached the upstream: {paths:?}");
    // A health check asks its URL only: a broken configuration on the probing side does not matter.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sora-legacy-shim"))
        .args(["healthcheck", "--url", &format!("{}/health", shim.url)])
        .env("SORA_SHIM__LEGACY__STRICT", "maybe")
        .current_dir(temp_dir("no-mappings"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    // Without --url it asks the address the configuration listens on (here from the environment;
    // 0.0.0.0 is asked on loopback), and --listen works as well.
    let port = shim.addr().rsplit(':').next().unwrap();
    let healthcheck = |env: (&str, String), args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_sora-legacy-shim"))
            .arg("healthcheck")
            .args(args)
            .env(env.0, env.1)
            .current_dir(temp_dir("no-mappings"))
            .output()
            .unwrap()
    };
    let output = healthcheck(("SORA_SHIM__LISTEN", format!("0.0.0.0:{port}")), &[]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let output = healthcheck(("SORA_SHIM__UNRELATED", String::new()), &["--listen", shim.addr()]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let output = healthcheck(("SORA_SHIM__LISTEN", closed.to_string()), &[]);
    assert_eq!(output.status.code(), Some(1), "nothing listens on {closed}");
    assert!(String::from_utf8_lossy(&output.stderr).contains(&format!("http://{closed}/health")));
    // A URL that is not one is a usage error (2), not an unhealthy shim (1).
    for url in ["notaurl", "ht tp://x", "/health", "https://127.0.0.1:1/health"] {
        let output = healthcheck(("SORA_SHIM__UNRELATED", String::new()), &["--url", url]);
        assert_eq!(output.status.code(), Some(2), "{url}: {}", String::from_utf8_lossy(&output.stderr));
    }
}

#[tokio::test]
async fn json_logs_carry_request_fields_and_no_secrets() {
    let sim = start_sim(&[]);
    let shim = start_shim(
        &ShimOptions::new(&sim.url)
            .env("SORA_SHIM__LOG__FORMAT", "json")
            .env("SORA_SHIM__LOG__LEVEL", "debug")
            .env("SORA_SHIM__WEBHOOK_AUTH__USERNAME", "sora")
            .env("SORA_SHIM__WEBHOOK_AUTH__PASSWORD", "webhook-pw-31337"),
    );
    let token = [("authorization", "Bearer tok-0123456789abcdef")];
    let translated = post(
        &shim.url,
        "/",
        Some(START),
        r#"{"channel_id":"log","expire_time":0,"metadata":{"patient":"secret-name"}}"#,
        &token,
    )
    .await;
    assert_eq!(translated.status, 200);
    let passthrough = post(&shim.url, "/", Some("Sora_20171010.GetStatsReport"), "", &token).await;
    assert_eq!(passthrough.status, 200);
    let wrong = format!("Basic {}", {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode("sora:webhook-pw-31337-wrong")
    });
    post(&shim.url, "/hooks/event", None, "{}", &[("authorization", wrong.as_str())])
        .await
        .assert_legacy_error(401, "UNAUTHORIZED");

    let finished: Vec<Value> = wait_for("three request lines", Duration::from_secs(5), || async {
        let lines: Vec<Value> = shim
            .log_text()
            .lines()
            .map(|line| {
                serde_json::from_str::<Value>(line).unwrap_or_else(|error| panic!("not JSON ({error}): {line}"))
            })
            .filter(|line| line["message"] == "request finished")
            .collect();
        (lines.len() >= 3).then_some(lines)
    })
    .await;
    let by_id = |reply: &Reply| -> Value {
        let id = reply.header("x-request-id").unwrap();
        finished
            .iter()
            .find(|line| line["span"]["request_id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no line for {id}"))
    };
    let line = by_id(&translated);
    assert_eq!((line["route"].as_str(), line["status"].as_u64()), (Some("translated"), Some(200)));
    assert_eq!(line["span"]["target"], START);
    assert!(line["latency_us"].is_u64());
    let line = by_id(&passthrough);
    assert_eq!(
        (line["route"].as_str(), line["span"]["target"].as_str()),
        (Some("passthrough"), Some("Sora_20171010.GetStatsReport"))
    );
    let log = shim.log_text();
    for secret in ["tok-0123456789abcdef", "webhook-pw-31337", "secret-name", &wrong[6..]] {
        assert!(!log.contains(secret), "{secret} leaked into the log");
    }
    assert!(log.contains("<redacted>"), "metadata is shown as redacted");
}

#[tokio::test]
async fn probe_reports_all_ok_against_the_emulator_and_exactly_a_renamed_error() {
    let sim = start_sim(&[]);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sora-legacy-shim"))
        .args(["probe", "--upstream", &sim.url, "--mappings"])
        .arg(mappings_dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("all 5 assumptions hold"), "{stdout}");
    assert!(!stdout.contains("DIFFERENT"));

    let renamed = start_sim(&["--no-session-error", "CHANNEL-IDLE"]);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sora-legacy-shim"))
        .args(["probe", "--upstream", &renamed.url, "--mappings"])
        .arg(mappings_dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let different: Vec<&str> = stdout.lines().filter(|line| line.contains("DIFFERENT")).collect();
    assert_eq!(different.len(), 2, "{stdout}");
    for line in different {
        assert!(line.contains("CHANNEL-IDLE") && line.contains("error_classes.no_session"), "{line}");
    }
    // The probe left nothing behind on the emulator.
    let state = get_json(&format!("{}/sim/state", renamed.url)).await;
    assert!(state["sessions"].as_array().unwrap().is_empty() && state["recordings"].as_array().unwrap().is_empty());

    // A channel id no legacy call could use is a usage error, not a "difference" in the mappings.
    for channel in ["", &"c".repeat(300), "a\nb"] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_sora-legacy-shim"))
            .args(["probe", "--upstream", &sim.url, "--channel", channel])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("is not a valid channel id"), "{stderr}");
    }
    assert_eq!(journal(&sim, "Sora_20231220.ListSessions").await.len(), 1, "only the first probe reached the emulator");
}

#[tokio::test]
async fn sighup_reloads_mappings_and_rejects_an_invalid_version() {
    let sim = start_sim(&[]);
    let dir = temp_dir("reload");
    for file in ["legacy.toml", "errors.toml", "upstream.toml"] {
        std::fs::copy(mappings_dir().join(file), dir.join(file)).unwrap();
    }
    let mut options = ShimOptions::new(&sim.url);
    options.mappings = Some(dir.clone());
    let shim = start_shim(&options);
    let pid = shim.pid();
    assert_eq!(api(&shim.url, START, json!({"channel_id": "r", "expire_time": 0})).await.status, 200);
    api(&shim.url, START, json!({"channel_id": "r", "expire_time": 0}))
        .await
        .assert_legacy_error(400, "STARTED-RECORDING");

    let errors = std::fs::read_to_string(dir.join("errors.toml")).unwrap();
    std::fs::write(dir.join("errors.toml"), errors.replace("\"STARTED-RECORDING\"", "\"ALREADY-STARTED\"")).unwrap();
    hangup(pid);
    wait_for("the new error name", Duration::from_secs(10), || async {
        let reply = api(&shim.url, START, json!({"channel_id": "r", "expire_time": 0})).await;
        (reply.text() == r#"{"error_type":"ALREADY-STARTED"}"#).then_some(())
    })
    .await;

    std::fs::write(dir.join("errors.toml"), "[names]\nstarted_recording = \"lower-case\"\n").unwrap();
    hangup(pid);
    wait_for("the rejection in the log", Duration::from_secs(10), || async {
        shim.log_text().contains("reload rejected").then_some(())
    })
    .await;
    api(&shim.url, START, json!({"channel_id": "r", "expire_time": 0}))
        .await
        .assert_legacy_error(400, "ALREADY-STARTED");
    // The orders were never touched.
    assert_eq!(
        api(&shim.url, "Sora_20161101.ListStartedRecording", json!({})).await.json().as_array().unwrap().len(),
        1
    );
}

#[tokio::test]
async fn sighup_keeps_an_implicit_mappings_dir_that_vanished() {
    let sim = start_sim(&[]);
    let workdir = temp_dir("implicit");
    let mappings = workdir.join("mappings");
    std::fs::create_dir_all(&mappings).unwrap();
    for file in ["legacy.toml", "errors.toml", "upstream.toml"] {
        std::fs::copy(mappings_dir().join(file), mappings.join(file)).unwrap();
    }
    let errors = std::fs::read_to_string(mappings.join("errors.toml")).unwrap();
    std::fs::write(mappings.join("errors.toml"), errors.replace("\"STARTED-RECORDING\"", "\"ALREADY-STARTED\""))
        .unwrap();
    let shim = start_shim(&ShimOptions { workdir: Some(workdir.clone()), ..ShimOptions::new(&sim.url) });
    api(&shim.url, START, json!({"channel_id": "i", "expire_time": 0})).await;
    let again = || api(&shim.url, START, json!({"channel_id": "i", "expire_time": 0}));
    again().await.assert_legacy_error(400, "ALREADY-STARTED");

    std::fs::rename(&mappings, workdir.join("mappings.moved")).unwrap();
    hangup(shim.pid());
    wait_for("the rejection in the log", Duration::from_secs(10), || async {
        shim.log_text().contains("reload rejected").then_some(())
    })
    .await;
    assert!(shim.log_text().contains("is gone; restore it"), "{}", shim.log_text());
    again().await.assert_legacy_error(400, "ALREADY-STARTED");
}

#[tokio::test]
async fn sighup_may_drop_a_named_mappings_dir_for_the_built_in_copies() {
    let sim = start_sim(&[]);
    let workdir = temp_dir("named");
    let config = workdir.join("shim.toml");
    std::fs::write(&config, format!("mappings_dir = {:?}\n", mappings_dir().to_str().unwrap())).unwrap();
    let mut options = ShimOptions { workdir: Some(workdir.clone()), ..ShimOptions::new(&sim.url) };
    options.args = vec!["--config".into(), config.to_str().unwrap().into()];
    let shim = start_shim(&options);
    // Naming no directory any more is a choice: the reload is taken, with the built-in copies.
    std::fs::write(&config, "").unwrap();
    hangup(shim.pid());
    wait_for("the reload", Duration::from_secs(10), || async {
        shim.log_text().contains("reloaded configuration and mappings").then_some(())
    })
    .await;
    assert!(!shim.log_text().contains("reload rejected"), "{}", shim.log_text());
    assert_eq!(api(&shim.url, START, json!({"channel_id": "n", "expire_time": 0})).await.status, 200);
}

fn hangup(pid: u32) {
    assert!(std::process::Command::new("kill").args(["-HUP", &pid.to_string()]).status().unwrap().success());
}

/// Flags a binary accepts, read from its real `--help`.
fn flags_of(binary: &str, subcommand: Option<&str>) -> Vec<String> {
    let mut command = std::process::Command::new(binary);
    if let Some(subcommand) = subcommand {
        command.arg(subcommand);
    }
    let help = String::from_utf8(command.arg("--help").output().unwrap().stdout).unwrap();
    help.split_whitespace()
        .filter(|word| word.starts_with("--"))
        .map(|word| word.trim_end_matches(',').to_owned())
        .collect()
}

#[test]
fn docker_compose_matches_the_binaries() {
    use yaml_rust2::{Yaml, YamlLoader};
    let text =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docker-compose.yml")).unwrap();
    let doc = &YamlLoader::load_from_str(&text).unwrap()[0];
    let services = &doc["services"];
    let strings = |yaml: &Yaml| -> Vec<String> {
        yaml.as_vec().unwrap().iter().map(|item| item.as_str().unwrap().to_owned()).collect()
    };
    let flag_value = |args: &[String], flag: &str| -> String {
        args.iter()
            .position(|arg| arg == flag)
            .map(|i| args[i + 1].clone())
            .unwrap_or_else(|| panic!("{flag} missing in {args:?}"))
    };

    // sora: sora-sim with real flags, webhooks pointing at the shim service's real paths and port.
    let sora = &services["sora"];
    assert_eq!(strings(&sora["entrypoint"]), ["sora-sim"]);
    let sora_args = strings(&sora["command"]);
    let sim_flags = flags_of(env!("CARGO_BIN_EXE_sora-sim"), None);
    for arg in sora_args.iter().filter(|arg| arg.starts_with("--")) {
        assert!(sim_flags.contains(arg), "sora-sim has no {arg}: {sim_flags:?}");
    }
    let sim_port = flag_value(&sora_args, "--listen").rsplit(':').next().unwrap().to_owned();

    // shim: `run` with real flags; its listen port is published; the upstream is the sora service.
    let shim = &services["shim"];
    let shim_args = strings(&shim["command"]);
    assert_eq!(shim_args[0], "run");
    let run_flags = flags_of(env!("CARGO_BIN_EXE_sora-legacy-shim"), Some("run"));
    for arg in shim_args.iter().filter(|arg| arg.starts_with("--")) {
        assert!(run_flags.contains(arg), "sora-legacy-shim run has no {arg}: {run_flags:?}");
    }
    let shim_port = flag_value(&shim_args, "--listen").rsplit(':').next().unwrap().to_owned();
    assert_eq!(shim["environment"]["SORA_SHIM__UPSTREAM__URL"].as_str().unwrap(), format!("http://sora:{sim_port}"));
    assert_eq!(flag_value(&sora_args, "--session-webhook-url"), format!("http://shim:{shim_port}/hooks/session"));
    assert_eq!(flag_value(&sora_args, "--event-webhook-url"), format!("http://shim:{shim_port}/hooks/event"));
    assert_eq!(strings(&shim["ports"]), [format!("{shim_port}:{shim_port}")]);
    assert_eq!(strings(&sora["ports"]), [format!("{sim_port}:{sim_port}")]);

    // The store lives on the declared volume.
    let store = flag_value(&shim_args, "--store");
    let volume = strings(&shim["volumes"])[0].clone();
    let (name, mount) = volume.split_once(':').unwrap();
    assert!(store.starts_with(mount), "{store} is not under {mount}");
    assert!(!doc["volumes"][name].is_badvalue(), "volume {name} is declared");

    // Health checks call the real healthcheck subcommand on the real ports and paths.
    let health_flags = flags_of(env!("CARGO_BIN_EXE_sora-legacy-shim"), Some("healthcheck"));
    assert!(health_flags.contains(&"--url".to_owned()));
    let shim_check = strings(&shim["healthcheck"]["test"]);
    assert_eq!(&shim_check[..3], ["CMD", "sora-legacy-shim", "healthcheck"]);
    assert_eq!(flag_value(&shim_check, "--url"), format!("http://127.0.0.1:{shim_port}/ready"));
    let sora_check = strings(&sora["healthcheck"]["test"]);
    assert_eq!(flag_value(&sora_check, "--url"), format!("http://127.0.0.1:{sim_port}/sim/state"));

    // The Dockerfile puts both binaries and the mappings where the compose file expects them.
    let dockerfile =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile")).unwrap();
    assert!(
        dockerfile.contains("/usr/local/bin/")
            && dockerfile.contains("sora-sim")
            && dockerfile.contains("sora-legacy-shim")
    );
    assert!(dockerfile.contains(&flag_value(&shim_args, "--mappings")));
    assert!(dockerfile.contains("USER "), "the runtime image is not root");
}
