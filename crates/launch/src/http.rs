//! A logged-in dashboard client for the soak and the benchmark (ureq, cookies by hand).

use std::time::Duration;

use anyhow::{Context, bail};

/// An authenticated session against a dashboard on loopback.
#[derive(Clone)]
pub struct Session {
    agent: ureq::Agent,
    base: String,
    cookie: String,
}

fn cookies_of(response: &ureq::Response) -> Vec<String> {
    response
        .all("set-cookie")
        .into_iter()
        .filter_map(|header| header.split(';').next())
        .map(str::to_string)
        .collect()
}

/// The value of the first hidden input named like a CSRF token.
fn csrf_field(html: &str) -> Option<(String, String)> {
    for input in html.split("<input").skip(1) {
        let tag = input.split('>').next().unwrap_or("");
        let attribute = |name: &str| -> Option<String> {
            let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
            Some(tag[start..].split('"').next()?.to_string())
        };
        if let Some(field) = attribute("name").filter(|n| n.contains("csrf")) {
            return Some((field, attribute("value").unwrap_or_default()));
        }
    }
    None
}

impl Session {
    /// Logs in through the login form as a browser would.
    pub fn login(base: &str, username: &str, password: &str) -> anyhow::Result<Session> {
        let agent = ureq::AgentBuilder::new()
            .redirects(0)
            .timeout(Duration::from_secs(30))
            .build();
        let page = agent
            .get(&format!("{base}/login"))
            .call()
            .context("GET /login")?;
        let mut cookies = cookies_of(&page);
        let html = page.into_string()?;
        let mut form = vec![
            ("username".to_string(), username.to_string()),
            ("password".to_string(), password.to_string()),
        ];
        if let Some(field) = csrf_field(&html) {
            form.push(field);
        }
        let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let response = agent
            .post(&format!("{base}/login"))
            .set("Cookie", &cookies.join("; "))
            .set("Origin", base)
            .send_form(&pairs);
        let response = match response {
            Ok(response) => response,
            Err(ureq::Error::Status(_, response)) => response,
            Err(error) => return Err(error).context("POST /login"),
        };
        cookies.extend(cookies_of(&response));
        if response.status() != 303 && response.status() != 302 {
            bail!("login as {username} failed with HTTP {}", response.status());
        }
        Ok(Session {
            agent,
            base: base.to_string(),
            cookie: cookies.join("; "),
        })
    }

    /// GETs `path`, returning the status and body length.
    pub fn get(&self, path: &str) -> anyhow::Result<(u16, usize)> {
        match self
            .agent
            .get(&format!("{}{path}", self.base))
            .set("Cookie", &self.cookie)
            .call()
        {
            Ok(response) => {
                let status = response.status();
                Ok((status, response.into_string()?.len()))
            }
            Err(ureq::Error::Status(status, response)) => {
                Ok((status, response.into_string().unwrap_or_default().len()))
            }
            Err(error) => Err(error.into()),
        }
    }
}

/// Waits until Aegis's dashboard answers on `base`: its own sign-in page, not whatever else
/// listens on the port (another server there would be handed a login, or an API key).
/// `still_running` is asked between tries and ends the wait with its error (the dashboard's
/// process exited: an address in use, a bad --addr).
pub fn wait_until_up(
    base: &str,
    timeout: Duration,
    still_running: &mut dyn FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + timeout;
    let agent = ureq::AgentBuilder::new()
        .redirects(0)
        .timeout(Duration::from_secs(2))
        .build();
    loop {
        still_running()?;
        let failure = match agent.get(&format!("{base}/login")).call() {
            Ok(response) => {
                let page = response.into_string().unwrap_or_default();
                if page.contains("· Aegis</title>") {
                    return Ok(());
                }
                "something else answers there (not Aegis's sign-in page)".to_string()
            }
            Err(ureq::Error::Status(status, _)) => {
                format!("something else answers there (HTTP {status} for the sign-in page)")
            }
            Err(error) => error.to_string(),
        };
        if std::time::Instant::now() >= deadline {
            bail!("the dashboard did not come up at {base}: {failure}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
