//! A real headless Chromium driven through chromedriver (fantoccini), for the dashboard's tests.
//!
//! Each `Browser` starts its own chromedriver on a free port and kills it when dropped. Chromium
//! and chromedriver come from Debian's `chromium` and `chromium-driver`: when either is missing
//! the test fails and says to run `scripts/test-deps` (a browser test never skips).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::error::{CmdError, ErrorStatus};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::support::free_port;

/// How long a wait for something on the page lasts before the test fails.
pub const PAGE_TIMEOUT: Duration = Duration::from_secs(20);
/// A wide (desktop) window.
pub const WIDE: (u32, u32) = (1366, 900);
/// A phone-sized window.
pub const NARROW: (u32, u32) = (390, 844);

/// Finds `name` on `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| std::fs::metadata(candidate).is_ok_and(|m| m.is_file()))
}

fn required_tool(name: &str) -> PathBuf {
    on_path(name).unwrap_or_else(|| {
        panic!(
            "`{name}` is not installed: the dashboard's browser tests need Debian's chromium and \
             chromium-driver; run scripts/test-deps (as root) to install them"
        )
    })
}

/// Waits until the chromedriver `child` listening on `port` says it is ready (false if it
/// exited or stayed silent for 10 s).
async fn wait_ready(child: &mut Child, port: u16) -> bool {
    let url = format!("http://127.0.0.1:{port}/status");
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if let Ok(response) = http.get(&url).send().await
            && let Ok(body) = response.json::<serde_json::Value>().await
            && body["value"]["ready"] == true
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// A chromedriver process, killed when dropped.
pub struct Driver {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Driver {
    /// Starts chromedriver on a free port and waits until it is ready.
    pub async fn start() -> Driver {
        let chromedriver = required_tool("chromedriver");
        required_tool("chromium");
        let dir = tempfile::tempdir().unwrap();
        let log_path = dir.path().join("chromedriver.log");
        for _ in 0..5 {
            let port = free_port();
            let log = std::fs::File::create(&log_path).unwrap();
            let mut child = Command::new(&chromedriver)
                // Its own process group, which the browsers it starts join: dropping the driver
                // kills them all, even when a failing test never closed its session.
                .process_group(0)
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1")
                // The browser's zone differs from UTC, so the pages show local times.
                .env("TZ", "Europe/Berlin")
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("spawn chromedriver");
            if wait_ready(&mut child, port).await {
                return Driver {
                    child,
                    port,
                    _dir: dir,
                };
            }
            // The port was taken between choosing and binding it: try another.
            kill_group(&mut child);
        }
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        panic!("chromedriver did not start:\n{log}");
    }

    /// Opens a new browser session; `dark` makes the page prefer a dark colour scheme.
    pub async fn session(&self, dark: bool) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let chromium = required_tool("chromium");
        let mut args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            // No crash reporter: its handler would detach and outlive the test.
            "--disable-breakpad".to_owned(),
            "--disable-crash-reporter".to_owned(),
            "--hide-scrollbars".to_owned(),
            "--lang=en-US".to_owned(),
            format!("--window-size={},{}", WIDE.0, WIDE.1),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        if dark {
            args.push("--blink-settings=preferredColorScheme=0".to_owned());
        }
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium, "args": args },
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!("an object literal")
        };
        let client = ClientBuilder::rustls()
            .expect("rustls connector")
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("open a chromium session through chromedriver");
        Browser {
            client,
            _profile: profile,
        }
    }
}

/// Kills `child` and every process of its process group (the browsers it started).
fn kill_group(child: &mut Child) {
    let group = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("a pid fits i32"));
    let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Driver {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

/// One browser session.
pub struct Browser {
    pub client: Client,
    _profile: tempfile::TempDir,
}

/// Tells whether a command failed because the page changed under it (the dashboard re-renders
/// polled parts), so that finding the element again and retrying is right.
fn is_transient(error: &CmdError) -> bool {
    match error {
        CmdError::Standard(e) => matches!(
            e.error,
            ErrorStatus::StaleElementReference
                | ErrorStatus::NoSuchElement
                | ErrorStatus::ElementNotInteractable
                | ErrorStatus::ElementClickIntercepted
        ),
        _ => false,
    }
}

impl Browser {
    /// Opens `url` and waits until the page has rendered `ready` (a CSS selector).
    pub async fn open(&self, url: &str, ready: &str) {
        self.client.goto(url).await.unwrap();
        self.find(ready).await;
    }

    /// Waits for the first element matching `css`.
    pub async fn find(&self, css: &str) -> Element {
        let deadline = tokio::time::Instant::now() + PAGE_TIMEOUT;
        loop {
            match self.client.find(Locator::Css(css)).await {
                Ok(element) => return element,
                Err(e) if is_transient(&e) => {}
                Err(e) => panic!("finding {css}: {e}"),
            }
            if tokio::time::Instant::now() >= deadline {
                let url = self.client.current_url().await.map(|u| u.to_string());
                panic!("no element {css} after {PAGE_TIMEOUT:?} on {url:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks the first element matching `css`, finding it again if the page re-rendered it.
    pub async fn click(&self, css: &str) {
        let deadline = tokio::time::Instant::now() + PAGE_TIMEOUT;
        loop {
            let result = match self.client.find(Locator::Css(css)).await {
                Ok(element) => self
                    .scroll_to_center(&element)
                    .await
                    .and(element.click().await),
                Err(e) => Err(e),
            };
            let error = match result {
                Ok(()) => return,
                Err(e) if is_transient(&e) => e,
                Err(e) => panic!("clicking {css}: {e}"),
            };
            assert!(
                tokio::time::Instant::now() < deadline,
                "could not click {css} within {PAGE_TIMEOUT:?}: {error}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Scrolls `element` to the middle of the viewport, clear of the sticky header, as a user
    /// would before clicking it.
    async fn scroll_to_center(&self, element: &Element) -> Result<(), CmdError> {
        let argument = serde_json::to_value(element).expect("an element serializes");
        self.client
            .execute(
                "arguments[0].scrollIntoView({block: 'center', inline: 'center'});",
                vec![argument],
            )
            .await
            .map(drop)
    }

    /// Replaces the value of the input matching `css` with `text`, as typed.
    pub async fn type_into(&self, css: &str, text: &str) {
        let input = self.find(css).await;
        input.clear().await.unwrap();
        input.send_keys(text).await.unwrap();
    }

    /// Chooses the option with `value` in the select matching `css`.
    pub async fn select(&self, css: &str, value: &str) {
        self.find(css).await.select_by_value(value).await.unwrap();
    }

    /// The text of the first element matching `css` ("" when it is gone or changing).
    pub async fn text(&self, css: &str) -> String {
        match self.client.find(Locator::Css(css)).await {
            Ok(element) => element.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Presses and releases `key` (a character, or a `fantoccini::key::Key` as char) wherever
    /// the keyboard focus is, as a user would.
    pub async fn press(&self, key: char) {
        use fantoccini::actions::{InputSource, KeyAction, KeyActions};
        let keys = KeyActions::new("keyboard".to_owned())
            .then(KeyAction::Down { value: key })
            .then(KeyAction::Up { value: key });
        self.client.perform_actions(keys).await.unwrap();
    }

    /// The `id` and text of the element that has the keyboard focus.
    pub async fn focused(&self) -> (String, String) {
        let value = self
            .client
            .execute(
                "const e = document.activeElement; return [e ? e.id : '', e ? e.textContent.trim() : ''];",
                vec![],
            )
            .await
            .unwrap();
        (
            value[0].as_str().unwrap_or_default().to_owned(),
            value[1].as_str().unwrap_or_default().to_owned(),
        )
    }

    /// The attribute `name` of the first element matching `css`, read in one step in the page
    /// (so a re-render between finding and reading cannot fail it); "" when absent.
    pub async fn attribute(&self, css: &str, name: &str) -> String {
        self.read_in_page(css, &format!("e.getAttribute({name:?})"))
            .await
    }

    /// The DOM property `name` (such as an input's `value`) of the first element matching `css`.
    pub async fn property(&self, css: &str, name: &str) -> String {
        self.read_in_page(css, &format!("e[{name:?}]")).await
    }

    async fn read_in_page(&self, css: &str, expression: &str) -> String {
        let script = format!(
            "const e = document.querySelector(arguments[0]); return e ? String({expression} ?? '') : '';"
        );
        let value = self
            .client
            .execute(&script, vec![json!(css)])
            .await
            .unwrap();
        value.as_str().unwrap_or_default().to_owned()
    }

    /// Waits until the text of the first element matching `css` contains `expected`; answers it.
    pub async fn wait_text(&self, css: &str, expected: &str) -> String {
        let deadline = tokio::time::Instant::now() + PAGE_TIMEOUT;
        loop {
            let text = self.text(css).await;
            if text.contains(expected) {
                return text;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{css} does not say {expected:?} after {PAGE_TIMEOUT:?}; it says {text:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the page's path (and query) is `expected`.
    pub async fn wait_path(&self, expected: &str) {
        let deadline = tokio::time::Instant::now() + PAGE_TIMEOUT;
        loop {
            let url = self.client.current_url().await.unwrap();
            let path = match url.query() {
                Some(q) => format!("{}?{q}", url.path()),
                None => url.path().to_owned(),
            };
            if path == expected {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the page is at {path}, not {expected}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Counts the elements matching `css`.
    pub async fn count(&self, css: &str) -> usize {
        self.client
            .find_all(Locator::Css(css))
            .await
            .map(|all| all.len())
            .unwrap_or(0)
    }

    /// Resizes the window (the viewport, in headless Chromium).
    pub async fn resize(&self, (width, height): (u32, u32)) {
        self.client.set_window_size(width, height).await.unwrap();
    }

    /// Saves a PNG of the viewport as `<dir>/<name>.png`.
    pub async fn screenshot(&self, dir: &Path, name: &str) {
        // Let animations and the last poll settle so the picture is stable.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// Closes the session.
    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}

/// The directory the screenshots go to: `target/ui-screenshots` of the workspace.
pub fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
