//! The dashboard (issue 6): its routes on the real binary, and browser tests that drive real
//! headless Chromium through the pages: create a job through the form (a rejected schedule shows
//! the API's message next to the field), see it run, open its output, edit, toggle, run now,
//! kill a long run, delete; page through 1,000 jobs and filter them. Every page is saved as a
//! screenshot under `target/ui-screenshots/`, wide and narrow, light and dark.

use std::time::Duration;

use serde_json::{Value, json};

use crate::browser::{Browser, Driver, NARROW, WIDE, screenshot_dir};
use crate::support::{Server, send, shell_job, wait_until};

/// `GET path` without following redirects, with an `Accept` header.
async fn get_accepting(server: &Server, path: &str, accept: &str) -> crate::support::Reply {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    send(http.get(server.url(path)).header("Accept", accept)).await
}

#[tokio::test]
async fn dashboard_is_served_and_root_redirects_browsers() {
    let server = Server::start(&[]).await;
    let root = get_accepting(&server, "/", "text/html,application/xhtml+xml,*/*;q=0.8").await;
    assert_eq!(root.status, 303, "{}", root.text);
    assert_eq!(root.header("location"), Some("/ui/"));
    let api_client = get_accepting(&server, "/", "application/json").await;
    assert_eq!(api_client.status, 404, "{}", api_client.text);

    let shell = get_accepting(&server, "/ui/jobs/some-job", "text/html").await;
    assert_eq!(shell.status, 200);
    assert_eq!(
        shell.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(shell.header("cache-control"), Some("no-cache"));
    let script = shell
        .text
        .split('"')
        .find(|s| s.starts_with("/ui/assets/") && s.ends_with("/app.js"))
        .expect("the shell loads app.js")
        .to_owned();
    let asset = get_accepting(&server, &script, "*/*").await;
    assert_eq!(asset.status, 200);
    assert_eq!(
        asset.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(
        asset.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
}

#[tokio::test]
async fn ui_false_turns_the_dashboard_off() {
    let server = Server::start(&["--ui=false"]).await;
    assert_eq!(
        get_accepting(&server, "/ui/", "text/html").await.status,
        404
    );
    assert_eq!(get_accepting(&server, "/", "text/html").await.status, 404);
    assert_eq!(server.http_get("/v1/jobs").await.status, 200);
}

#[tokio::test]
async fn next_fire_times_are_in_the_jobs_zone() {
    let server = Server::start(&[]).await;
    let mut job = shell_job("berlin", "true");
    job["schedule"] = json!("0 30 9 * * *");
    job["timezone"] = json!("Europe/Berlin");
    server.create_job_ok(&job).await;
    let reply = server.http_get("/v1/jobs/berlin/next?n=7").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["timezone"], "Europe/Berlin");
    let fires: Vec<&str> = body["next"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(fires.len(), 7);
    // 09:30 in Berlin is 08:30 UTC in winter and 07:30 UTC in summer.
    for fire in &fires {
        assert!(
            fire.ends_with("T08:30:00Z") || fire.ends_with("T07:30:00Z"),
            "{fire}"
        );
    }
    assert!(fires.windows(2).all(|w| w[0] < w[1]), "{fires:?}");
    let default = server.http_get("/v1/jobs/berlin/next").await.json();
    assert_eq!(default["next"].as_array().unwrap().len(), 5);
    assert_eq!(server.http_get("/v1/jobs/nope/next").await.status, 404);
    assert_eq!(
        server.http_get("/v1/jobs/berlin/next?n=x").await.status,
        400
    );
}

#[tokio::test]
async fn schedule_preview_answers_fires_or_the_submissions_message() {
    let server = Server::start(&[]).await;
    let ok = server
        .http_post_json(
            "/v1/schedule/preview",
            &json!({"schedule": "@every 1h", "name": "x"}),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.json()["timezone"], "UTC");
    assert_eq!(ok.json()["next"].as_array().unwrap().len(), 5);

    for (schedule, timezone) in [("61 * * * * *", ""), ("@every 1h", "Mars/Olympus")] {
        let preview = server
            .http_post_json(
                "/v1/schedule/preview",
                &json!({"schedule": schedule, "timezone": timezone, "name": "x"}),
            )
            .await;
        assert_eq!(preview.status, 400, "{}", preview.text);
        let mut job = shell_job("x", "true");
        job["schedule"] = json!(schedule);
        job["timezone"] = json!(timezone);
        let submitted = server.http_post_json("/v1/jobs", &job).await;
        assert_eq!(submitted.status, 400);
        assert_eq!(preview.error(), submitted.error());
    }
}

#[tokio::test]
async fn summary_counts_jobs_by_status() {
    let server = Server::start(&[]).await;
    server.create_job_ok(&shell_job("good", "true")).await;
    server.create_job_ok(&shell_job("bad", "false")).await;
    let mut off = shell_job("off", "true");
    off["disabled"] = json!(true);
    server.create_job_ok(&off).await;
    server.client.run_job_and_wait("good").await.unwrap();
    server.client.run_job_and_wait("bad").await.unwrap();
    let summary = server.http_get("/v1/summary").await.json();
    assert_eq!(
        summary["jobs"],
        json!({"total": 3, "success": 1, "failed": 1, "partially_failed": 0, "untriggered": 1, "disabled": 1})
    );
    assert_eq!(summary["running"], 0);
}

// ---- browser tests ------------------------------------------------------------------------

/// The executions of `job` as the API lists them (newest first).
async fn executions(server: &Server, job: &str) -> Vec<Value> {
    server
        .http_get(&format!("/v1/jobs/{job}/executions"))
        .await
        .json()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn browser_job_lifecycle_through_the_dashboard() {
    let server = Server::start(&[]).await;
    let driver = Driver::start().await;
    let browser = driver.session(false).await;
    let shots = screenshot_dir();

    // The overview links to the editor.
    browser.open(&server.url("/ui/"), "[data-test=total]").await;
    browser.click("a.new-job").await;
    browser.wait_path("/ui/create").await;

    // A schedule the API rejects: its message shows next to the schedule field, nothing is stored.
    browser.type_into("#f-name", "ui-flow").await;
    browser.type_into("#f-schedule", "61 * * * * *").await;
    browser
        .type_into("#f-exec-command", "echo hello-from-ui")
        .await;
    browser.click("[data-test=save]").await;
    browser
        .wait_text("#form-error", "The job was not saved")
        .await;
    let shown = browser
        .wait_text("#err-schedule", "can't parse job schedule")
        .await;
    let mut rejected = shell_job("ui-flow", "echo hello-from-ui");
    rejected["schedule"] = json!("61 * * * * *");
    let api_message = server.http_post_json("/v1/jobs", &rejected).await.error();
    assert_eq!(shown, api_message, "the field shows the API's message");
    assert_eq!(server.http_get("/v1/jobs/ui-flow").await.status, 404);
    browser.screenshot(&shots, "create-rejected-schedule").await;

    // A good schedule: the next five runs show while typing, and the job is created.
    browser.type_into("#f-schedule", "@every 2s").await;
    browser.wait_text("#schedule-preview", "Next runs").await;
    assert!(
        wait_until(Duration::from_secs(5), || async {
            browser.count("#schedule-preview li").await == 5
        })
        .await
    );
    assert_eq!(browser.text("#err-schedule").await, "");
    browser.click("[data-test=save]").await;
    browser.wait_path("/ui/jobs/ui-flow").await;

    // It runs; its output opens on demand.
    browser.find("tr.execution [data-status=success]").await;
    browser.click("tr.execution [data-test=show-output]").await;
    browser
        .wait_text("pre[data-test=output]", "hello-from-ui")
        .await;
    browser.screenshot(&shots, "job-output").await;

    // Edit: the form holds the job; the change is stored.
    browser.click("[data-test=edit]").await;
    browser.wait_path("/ui/jobs/ui-flow/edit").await;
    browser.find("#f-exec-command").await;
    assert_eq!(
        browser.property("#f-exec-command", "value").await,
        "echo hello-from-ui"
    );
    browser
        .type_into("#f-exec-command", "echo edited-by-ui")
        .await;
    browser.type_into("#f-displayname", "UI flow job").await;
    browser.screenshot(&shots, "edit").await;
    // The raw JSON mode holds the same job, and going back keeps it.
    browser.click("[data-test=mode-json]").await;
    browser.find("#f-json").await;
    let raw = browser.property("#f-json", "value").await;
    let raw: Value = serde_json::from_str(&raw).expect("the JSON mode holds JSON");
    assert_eq!(raw["executor_config"]["command"], "echo edited-by-ui");
    assert_eq!(raw["displayname"], "UI flow job");
    browser.screenshot(&shots, "edit-json").await;
    browser.click("[data-test=mode-form]").await;
    browser.find("#f-exec-command").await;
    browser.click("[data-test=save]").await;
    browser.wait_path("/ui/jobs/ui-flow").await;
    browser.wait_text("h1", "UI flow job").await;
    let stored = server.http_get("/v1/jobs/ui-flow").await.json();
    assert_eq!(stored["executor_config"]["command"], "echo edited-by-ui");
    assert_eq!(stored["schedule"], "@every 2s");

    // Toggle: disabled, so no more scheduled runs.
    browser.click("[data-test=toggle]").await;
    browser.wait_text("[data-test=toggle]", "Enable").await;
    assert_eq!(
        server.http_get("/v1/jobs/ui-flow").await.json()["disabled"],
        true
    );

    // Run now (a disabled job still runs on request): a new execution with the edited command.
    tokio::time::sleep(Duration::from_millis(2500)).await; // let a run started before the toggle finish
    let before = executions(&server, "ui-flow").await.len();
    browser.click("[data-test=run]").await;
    let ran = wait_until(Duration::from_secs(15), || async {
        let list = executions(&server, "ui-flow").await;
        list.len() > before
            && list[0]["output"]
                .as_str()
                .is_some_and(|o| o.contains("edited-by-ui"))
    })
    .await;
    assert!(
        ran,
        "run now did not run: {:?}",
        executions(&server, "ui-flow").await
    );
    browser
        .wait_text("tbody.group tr.execution td.preview", "edited-by-ui")
        .await;
    browser.screenshot(&shots, "job-after-run-now").await;

    // A long run: its output streams live, it shows on the busy page, and it can be killed.
    server
        .create_job_ok(&shell_job("ui-long", "echo started-long; sleep 120"))
        .await;
    browser
        .open(&server.url("/ui/jobs/ui-long"), "[data-test=run]")
        .await;
    browser.click("[data-test=run]").await;
    browser.find("[data-test=kill]").await;
    browser.click("tr.execution [data-test=show-output]").await;
    browser
        .wait_text("pre[data-test=output]", "started-long")
        .await;
    browser.wait_text(".output-note", "Live").await;
    browser.screenshot(&shots, "job-live-output").await;
    browser
        .open(&server.url("/ui/busy"), "tbody[data-execution]")
        .await;
    browser.wait_text("table.busy", "ui-long").await;
    browser.screenshot(&shots, "busy").await;
    browser
        .open(&server.url("/ui/jobs/ui-long"), "[data-test=kill]")
        .await;
    browser.click("[data-test=kill]").await;
    browser.click("dialog [data-test=confirm]").await;
    browser.find("tr.execution [data-status=failed]").await;
    browser.click("tr.execution [data-test=show-output]").await;
    browser
        .wait_text("pre[data-test=output]", "killed by request")
        .await;
    let killed = executions(&server, "ui-long").await;
    assert_eq!(killed.len(), 1);
    assert_eq!(killed[0]["success"], false);

    // Delete, after confirming.
    browser
        .open(&server.url("/ui/jobs/ui-flow"), "[data-test=delete]")
        .await;
    browser.click("[data-test=delete]").await;
    browser.click("dialog [data-test=confirm]").await;
    browser.wait_path("/ui/jobs").await;
    assert_eq!(server.http_get("/v1/jobs/ui-flow").await.status, 404);

    // Members: the leader is marked.
    browser
        .open(&server.url("/ui/members"), "[data-test=leader]")
        .await;
    browser.wait_text("[data-member=test-node]", "leader").await;
    browser.close().await;

    tour(&driver, &server).await;
}

/// Fills the server with a job that has a few runs, then saves every page wide and narrow, light
/// and dark.
async fn tour(driver: &Driver, server: &Server) {
    // Every other attempt fails, so runs show a failed attempt and its successful retry.
    let marker = tempfile::tempdir().unwrap();
    let command = format!(
        "if [ -e {m} ]; then rm {m}; echo building report; echo 1200 rows written; \
         else touch {m}; echo 'database busy, giving up'; exit 1; fi",
        m = marker.path().join("failed-once").display()
    );
    let report = json!({
        "name": "nightly-report",
        "displayname": "Nightly sales report",
        "schedule": "@every 2s",
        "timezone": "America/New_York",
        "owner": "Data team",
        "owner_email": "data@example.com",
        "executor": "shell",
        "executor_config": {"command": command, "shell": "true", "timeout": "5m"},
        "tags": {"dkron_server": "true"},
        "metadata": {"team": "data", "tier": "2"},
        "retries": 1,
        "retry_interval": "1s",
        "concurrency": "forbid"
    });
    server.create_job_ok(&report).await;
    server
        .create_job_ok(&shell_job("cleanup-tmp", "echo nothing to clean"))
        .await;
    server.client.run_job_and_wait("cleanup-tmp").await.unwrap();
    server
        .create_job_ok(&shell_job(
            "flaky-import",
            "echo connection refused; exit 3",
        ))
        .await;
    server
        .client
        .run_job_and_wait("flaky-import")
        .await
        .unwrap();
    server
        .wait_finished_executions("nightly-report", 6, Duration::from_secs(30))
        .await;
    let mut paused = shell_job("paused-sync", "true");
    paused["disabled"] = json!(true);
    paused["schedule"] = json!("0 */15 * * * *");
    server.create_job_ok(&paused).await;

    let shots = screenshot_dir();
    let pages: [(&str, &str, &str); 7] = [
        ("overview", "/ui/", "[data-test=total]"),
        ("jobs", "/ui/jobs", "tr[data-job]"),
        ("job", "/ui/jobs/nightly-report", "tr.execution"),
        (
            "edit",
            "/ui/jobs/nightly-report/edit",
            "#schedule-preview li",
        ),
        ("create", "/ui/create", "#f-name"),
        ("busy", "/ui/busy", "h1"),
        ("members", "/ui/members", "[data-test=leader]"),
    ];
    for dark in [false, true] {
        let browser: Browser = driver.session(dark).await;
        let scheme = if dark { "dark" } else { "light" };
        for (size_name, size) in [("wide", WIDE), ("narrow", NARROW)] {
            browser.resize(size).await;
            for (name, path, ready) in pages {
                browser.open(&server.url(path), ready).await;
                browser
                    .screenshot(&shots, &format!("{name}-{size_name}-{scheme}"))
                    .await;
            }
        }
        browser.close().await;
    }
}

/// Creates `count` jobs `page-0001` … with metadata `team` `a` (even) or `b` (odd); every tenth
/// is disabled.
async fn create_numbered_jobs(server: &Server, count: usize) {
    let mut tasks = tokio::task::JoinSet::new();
    let http = server.client.http().clone();
    let url = server.url("/v1/jobs");
    let limit = std::sync::Arc::new(tokio::sync::Semaphore::new(16));
    for i in 1..=count {
        let (http, url, limit) = (http.clone(), url.clone(), limit.clone());
        tasks.spawn(async move {
            let _permit = limit.acquire().await.unwrap();
            let job = json!({
                "name": format!("page-{i:04}"),
                "schedule": "@daily",
                "executor": "shell",
                "executor_config": {"command": "echo paged"},
                "metadata": {"team": if i % 2 == 0 { "a" } else { "b" }},
                "disabled": i % 10 == 0,
            });
            let response = http.post(&url).json(&job).send().await.unwrap();
            assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
}

async fn first_row(browser: &Browser) -> String {
    browser.find("table.jobs tbody tr").await;
    browser.attribute("table.jobs tbody tr", "data-job").await
}

#[tokio::test]
async fn browser_pages_through_a_thousand_jobs_and_filters_them() {
    let server = Server::start(&[]).await;
    create_numbered_jobs(&server, 1000).await;
    let driver = Driver::start().await;
    let browser = driver.session(false).await;
    let shots = screenshot_dir();

    browser
        .open(&server.url("/ui/jobs"), "table.jobs tbody tr")
        .await;
    browser.wait_text("p.summary", "1–25 of 1,000 jobs").await;
    assert_eq!(first_row(&browser).await, "page-0001");
    browser.screenshot(&shots, "jobs-1000").await;

    // The keyboard: "/" focuses the search; Tab reaches the rows' links; Enter opens a job.
    browser.press('/').await;
    assert_eq!(browser.focused().await.0, "job-search");
    let tab = fantoccini::key::Key::Tab.into();
    let mut reached = String::new();
    for _ in 0..40 {
        browser.press(tab).await;
        reached = browser.focused().await.1;
        if reached == "page-0001" {
            break;
        }
    }
    assert_eq!(
        reached, "page-0001",
        "Tab did not reach the first job's link"
    );
    browser.press(fantoccini::key::Key::Enter.into()).await;
    browser.wait_path("/ui/jobs/page-0001").await;
    browser.wait_text("h1", "page-0001").await;
    browser.client.back().await.unwrap();
    browser.wait_text("p.summary", "1–25 of 1,000 jobs").await;

    // Paging is done by the server: next, last, a page size.
    browser.click("[data-key=next]").await;
    browser.wait_text("p.summary", "26–50 of 1,000 jobs").await;
    browser.wait_path("/ui/jobs?page=2").await;
    assert_eq!(first_row(&browser).await, "page-0026");
    browser.click("[data-key=last]").await;
    browser
        .wait_text("p.summary", "976–1,000 of 1,000 jobs")
        .await;
    assert_eq!(browser.property("#page-number", "value").await, "40");
    browser.client.back().await.unwrap();
    browser.wait_text("p.summary", "26–50 of 1,000 jobs").await;
    browser.select("#page-size", "100").await;
    browser.wait_text("p.summary", "1–100 of 1,000 jobs").await;
    assert_eq!(browser.count("table.jobs tbody tr").await, 100);

    // Sorting by name, descending.
    browser.click("[data-key=sort-name]").await;
    browser.wait_text("p.summary", "1–100 of 1,000 jobs").await;
    assert!(
        wait_until(Duration::from_secs(10), || async {
            first_row(&browser).await == "page-1000"
        })
        .await
    );

    // Filters: a search, enabled or not, metadata.
    browser.type_into("#job-search", "page-09").await;
    browser.wait_text("p.summary", "1–100 of 100 jobs").await;
    browser.select("#job-enabled", "true").await;
    browser.wait_text("p.summary", "1–10 of 10 jobs").await;
    assert_eq!(first_row(&browser).await, "page-0990");
    browser.type_into("#job-metadata", "team=b\n").await;
    browser.wait_text(".table-box", "No job matches").await;
    browser.type_into("#job-metadata", "team=a\n").await;
    browser.wait_text("p.summary", "1–10 of 10 jobs").await;
    browser.screenshot(&shots, "jobs-filtered").await;

    // Bulk toggle: the ten disabled jobs are enabled, so the filtered list empties.
    browser.click("[data-key=select-all]").await;
    browser.wait_text(".bulk-info", "10 selected").await;
    browser.click("[data-test=bulk-toggle]").await;
    browser.wait_text("p.summary", "0 jobs").await;
    // The page may list again before the last of the ten toggles has answered.
    assert!(
        wait_until(Duration::from_secs(10), || async {
            server.http_get("/v1/jobs/page-0900").await.json()["disabled"] == false
        })
        .await,
        "page-0900 is still disabled"
    );

    // Bulk delete and bulk run on a search.
    browser
        .open(&server.url("/ui/jobs?q=page-000"), "table.jobs tbody tr")
        .await;
    browser.wait_text("p.summary", "1–9 of 9 jobs").await;
    browser.click("[data-key=select-page-0001]").await;
    browser.click("[data-key=select-page-0002]").await;
    browser.click("[data-test=bulk-delete]").await;
    browser.click("dialog [data-test=confirm]").await;
    browser.wait_text("p.summary", "1–7 of 7 jobs").await;
    assert_eq!(server.http_get("/v1/jobs/page-0001").await.status, 404);
    assert_eq!(server.http_get("/v1/jobs/page-0002").await.status, 404);
    browser.click("[data-key=select-page-0003]").await;
    browser.click("[data-test=bulk-run]").await;
    server
        .wait_finished_executions("page-0003", 1, Duration::from_secs(15))
        .await;

    // The overview counts them.
    browser.open(&server.url("/ui/"), "[data-test=total]").await;
    browser.wait_text("[data-test=total]", "998").await;
    browser.close().await;
}
