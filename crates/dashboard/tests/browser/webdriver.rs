//! A minimal W3C WebDriver client (JSON over HTTP to chromedriver), enough for the browser
//! end-to-end test and the README screenshots.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub struct Browser {
    agent: ureq::Agent,
    base: String,
    session: String,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    /// Starts headless Chromium through chromedriver listening at `driver`.
    pub fn start(driver: &str, download_dir: &std::path::Path) -> anyhow::Result<Browser> {
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(60))
            .build();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--disable-dev-shm-usage", "--window-size=1440,1000"],
                "prefs": {"download.default_directory": download_dir.to_str().unwrap_or("/tmp"),
                          "download.prompt_for_download": false}
            }
        }}});
        let response: Value = agent
            .post(&format!("{driver}/session"))
            .send_json(capabilities)?
            .into_json()?;
        let session = response["value"]["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("no session: {response}"))?
            .to_string();
        Ok(Browser {
            agent,
            base: format!("{driver}/session/{session}"),
            session,
        })
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let request = self.agent.request(method, &url);
        let response = match body {
            Some(body) => request.send_json(body),
            None => request.call(),
        };
        let value: Value = match response {
            Ok(response) => response.into_json()?,
            Err(ureq::Error::Status(code, response)) => {
                let text = response.into_string().unwrap_or_default();
                anyhow::bail!("webdriver {method} {path} → {code}: {text}");
            }
            Err(error) => return Err(error.into()),
        };
        Ok(value["value"].clone())
    }

    pub fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.call("POST", "/url", Some(json!({"url": url})))?;
        Ok(())
    }

    pub fn find(&self, css: &str) -> anyhow::Result<String> {
        let value = self.call(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        )?;
        value[ELEMENT]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow::anyhow!("no element {css}"))
    }

    /// Waits up to `timeout` for an element.
    pub fn wait_for(&self, css: &str, timeout: Duration) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.find(css) {
                Ok(element) => return Ok(element),
                Err(error) if Instant::now() > deadline => return Err(error),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    pub fn type_into(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let element = self.find(css)?;
        self.call(
            "POST",
            &format!("/element/{element}/clear"),
            Some(json!({})),
        )?;
        self.call(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({"text": text})),
        )?;
        Ok(())
    }

    pub fn click(&self, css: &str) -> anyhow::Result<()> {
        let element = self.find(css)?;
        self.call(
            "POST",
            &format!("/element/{element}/click"),
            Some(json!({})),
        )?;
        Ok(())
    }

    pub fn text(&self, css: &str) -> anyhow::Result<String> {
        let element = self.find(css)?;
        Ok(self
            .call("GET", &format!("/element/{element}/text"), None)?
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    pub fn script(&self, script: &str) -> anyhow::Result<Value> {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    pub fn current_url(&self) -> anyhow::Result<String> {
        Ok(self
            .call("GET", "/url", None)?
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    /// A PNG screenshot of the viewport.
    pub fn screenshot(&self) -> anyhow::Result<Vec<u8>> {
        use base64_decode::decode;
        let data = self.call("GET", "/screenshot", None)?;
        decode(data.as_str().unwrap_or_default())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.agent.delete(&self.base).call();
        let _ = &self.session;
    }
}

/// Standard base64 decoding (the screenshot payload), without another dependency.
mod base64_decode {
    pub fn decode(text: &str) -> anyhow::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(text.len() * 3 / 4);
        let mut buffer = 0u32;
        let mut bits = 0;
        for byte in text.bytes() {
            let value = match byte {
                b'A'..=b'Z' => byte - b'A',
                b'a'..=b'z' => byte - b'a' + 26,
                b'0'..=b'9' => byte - b'0' + 52,
                b'+' => 62,
                b'/' => 63,
                b'=' | b'\n' | b'\r' => continue,
                other => anyhow::bail!("bad base64 byte {other}"),
            };
            buffer = (buffer << 6) | u32::from(value);
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((buffer >> bits) as u8);
                buffer &= (1 << bits) - 1;
            }
        }
        Ok(out)
    }
}
