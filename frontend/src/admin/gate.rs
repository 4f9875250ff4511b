//! The admin token in the browser: one [`Admin`] for the whole app, and
//! [`TokenGate`], which asks for the token before showing an admin page.

use leptos::prelude::*;
use serde::de::DeserializeOwned;

use super::token;
use crate::api::http::{self, Failure};

/// The admin token of this tab, shared by every admin page.
#[derive(Debug, Clone, Copy)]
pub struct Admin {
    token: RwSignal<Option<String>>,
    /// Why the token was dropped, shown above the form that asks again.
    notice: RwSignal<Option<String>>,
}

impl Admin {
    fn new() -> Self {
        Self {
            token: RwSignal::new(token::load()),
            notice: RwSignal::new(None),
        }
    }

    /// The token, read without tracking.
    pub fn token(&self) -> Option<String> {
        self.token.get_untracked()
    }

    /// The server refused the token: forget it and ask again.
    pub fn refused(&self, message: &str) {
        token::forget();
        self.notice.set(Some(message.to_string()));
        self.token.set(None);
    }

    /// A request's outcome with the failure as its sentence; a refused
    /// token is forgotten, which brings the token form back.
    pub fn check<T>(&self, outcome: Result<T, Failure>) -> Result<T, String> {
        outcome.map_err(|failure| {
            if failure.is_unauthorized() {
                self.refused(&failure.message);
            }
            failure.message
        })
    }

    /// `GET url` as JSON with the token, its failure checked as
    /// [`Admin::check`] does.
    pub async fn get_json<T: DeserializeOwned>(&self, url: &str) -> Result<T, String> {
        self.check(http::get_json(url, self.token().as_deref()).await)
    }

    fn accept(&self, typed: &str) -> bool {
        let Some(value) = token::normalise(typed) else {
            return false;
        };
        token::save(&value);
        self.notice.set(None);
        self.token.set(Some(value));
        true
    }
}

/// Makes the app's one [`Admin`]; the shell calls this once, above every
/// page, so that the token outlives the page that asked for it.
pub fn provide_admin() {
    provide_context(Admin::new());
}

/// The app's [`Admin`].
pub fn use_admin() -> Admin {
    expect_context::<Admin>()
}

/// Shows `children` once an admin token is known; until then, a form that
/// asks for it.
#[component]
pub fn TokenGate(children: ChildrenFn) -> impl IntoView {
    let admin = use_admin();
    let has_token = Memo::new(move |_| admin.token.with(Option::is_some));
    let typed = RwSignal::new(String::new());
    let problem = RwSignal::new(None::<String>);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if admin.accept(&typed.get_untracked()) {
            typed.set(String::new());
            problem.set(None);
        } else {
            problem.set(Some("Type or paste the admin token first.".into()));
        }
    };

    move || {
        if has_token.get() {
            return children().into_any();
        }
        view! {
            <form class="card token-form" on:submit=submit>
                <h2>"Admin token"</h2>
                <p>
                    "This page is for the admin. The token is in the server's data folder "
                    "(file " <code>"admin_token"</code> ") or its log at first start. "
                    "It is kept in this tab only."
                </p>
                {alert(admin.notice)}
                {alert(problem)}
                <label for="admin-token">"Token"</label>
                <input
                    id="admin-token"
                    type="password"
                    autocomplete="current-password"
                    prop:value=move || typed.get()
                    on:input=move |ev| typed.set(event_target_value(&ev))
                />
                <button type="submit">"Continue"</button>
            </form>
        }
        .into_any()
    }
}

/// `message` as an alert, while there is one.
fn alert(message: RwSignal<Option<String>>) -> impl IntoView {
    move || {
        message
            .get()
            .map(|m| view! { <p class="error" role="alert">{m}</p> })
    }
}
