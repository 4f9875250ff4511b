//! The shell of the app: which page the URL's fragment names, the
//! navigation bar, and (in the browser) mounting the app on the page.
//!
//! Pages live behind `#/...` fragments so that the server needs no route
//! per page: it serves `index.html` at `/` and the app reads the fragment.

/// The pages of the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Identify,
    Map,
    Review,
    Catalog,
    Individual(String),
    Training,
}

impl Route {
    /// The page a location fragment (`#/review`, `#/catalog/w_1`) names;
    /// anything unknown is the identification page.
    pub fn parse(fragment: &str) -> Self {
        let path = fragment.trim_start_matches('#').trim_matches('/');
        let (head, rest) = path.split_once('/').unwrap_or((path, ""));
        match (head, rest) {
            ("map", _) => Route::Map,
            ("review", _) => Route::Review,
            ("catalog", "") => Route::Catalog,
            ("catalog", id) => Route::Individual(decode_component(id)),
            ("training", _) => Route::Training,
            _ => Route::Identify,
        }
    }

    /// The fragment that leads to this page.
    pub fn href(&self) -> String {
        match self {
            Route::Identify => "#/".into(),
            Route::Map => "#/map".into(),
            Route::Review => "#/review".into(),
            Route::Catalog => "#/catalog".into(),
            Route::Individual(id) => format!("#/catalog/{}", encode_component(id)),
            Route::Training => "#/training".into(),
        }
    }

    /// The entry of the navigation bar this page belongs to.
    pub fn section(&self) -> Route {
        match self {
            Route::Individual(_) => Route::Catalog,
            other => other.clone(),
        }
    }
}

/// Percent-encodes everything but letters, digits, `-`, `_` and `.`.
pub fn encode_component(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Undoes [`encode_component`]; malformed escapes are kept as they are.
fn decode_component(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut idx = 0;
    while idx < bytes.len() {
        let hex = bytes
            .get(idx + 1..idx + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[idx], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                idx += 3;
            }
            (byte, _) => {
                out.push(byte);
                idx += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(target_arch = "wasm32")]
pub use shell::mount;

#[cfg(target_arch = "wasm32")]
mod shell {
    use leptos::prelude::*;

    use super::Route;
    use crate::admin::provide_admin;
    use crate::dashboard::DashboardPage;
    use crate::identify::IdentifyPage;
    use crate::map::MapPage;
    use crate::review::{CatalogPage, IndividualPage, ReviewPage};

    /// Mounts the app on the page's body.
    pub fn mount() {
        console_error_panic_hook::set_once();
        leptos::mount::mount_to_body(App);
    }

    fn current_route() -> Route {
        let hash = window().location().hash().unwrap_or_default();
        Route::parse(&hash)
    }

    #[component]
    fn App() -> impl IntoView {
        provide_admin();
        let route = RwSignal::new(current_route());
        let listener =
            window_event_listener(leptos::ev::hashchange, move |_| route.set(current_route()));
        on_cleanup(move || listener.remove());

        let page = move || match route.get() {
            Route::Identify => view! { <IdentifyPage/> }.into_any(),
            Route::Map => view! { <MapPage/> }.into_any(),
            Route::Review => view! { <ReviewPage/> }.into_any(),
            Route::Catalog => view! { <CatalogPage/> }.into_any(),
            Route::Individual(id) => view! { <IndividualPage id=id/> }.into_any(),
            Route::Training => view! { <DashboardPage/> }.into_any(),
        };
        view! {
            <header class="top">
                <a class="brand" href="#/">"flukeid"</a>
                <nav aria-label="Pages">
                    <NavLink route=route to=Route::Identify label="Identify"/>
                    <NavLink route=route to=Route::Map label="Map"/>
                    <NavLink route=route to=Route::Review label="Review"/>
                    <NavLink route=route to=Route::Catalog label="Catalogue"/>
                    <NavLink route=route to=Route::Training label="Training"/>
                </nav>
            </header>
            <main id="main">{page}</main>
        }
    }

    #[component]
    fn NavLink(route: RwSignal<Route>, to: Route, label: &'static str) -> impl IntoView {
        let href = to.href();
        let here = Memo::new(move |_| route.with(|r| r.section() == to));
        view! {
            <a href=href class:current=here aria-current=move || here.get().then_some("page")>
                {label}
            </a>
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_name_pages_and_unknown_ones_fall_back_to_identify() {
        assert_eq!(Route::parse(""), Route::Identify);
        assert_eq!(Route::parse("#/"), Route::Identify);
        assert_eq!(Route::parse("#/map"), Route::Map);
        assert_eq!(Route::parse("#/review/"), Route::Review);
        assert_eq!(Route::parse("#/catalog"), Route::Catalog);
        assert_eq!(Route::parse("#/training"), Route::Training);
        assert_eq!(Route::parse("#/nowhere"), Route::Identify);
    }

    #[test]
    fn individual_ids_survive_the_round_trip_through_the_fragment() {
        for id in ["w_1a2b3c4", "whale 7/b", "w_é"] {
            let route = Route::Individual(id.into());
            assert_eq!(Route::parse(&route.href()), route, "{}", route.href());
        }
        assert_eq!(Route::Individual("a b".into()).href(), "#/catalog/a%20b");
        assert_eq!(
            Route::parse("#/catalog/100%"),
            Route::Individual("100%".into())
        );
        assert_eq!(Route::Individual("x".into()).section(), Route::Catalog);
    }
}
