//! The catalogue: every individual with its photo and sighting counts, one
//! individual's photos and sightings, and the sightings as a CSV file.

use flukeid_shared::api::{IndividualDetail, IndividualSummary};
use leptos::prelude::*;
use leptos::task::spawn_local;

use super::queue::find_individuals;
use crate::admin::{use_admin, Admin, TokenGate};
use crate::api::http::download;
use crate::app::{encode_component, Route};
use crate::dashboard::Outcome;
use crate::format;

/// Most individuals listed at once; a search narrows the rest.
const MAX_LISTED: usize = 200;

/// The list of individuals (behind the admin token).
#[component]
pub fn CatalogPage() -> impl IntoView {
    view! {
        <TokenGate>
            <Catalog/>
        </TokenGate>
    }
}

/// One individual's photos and sightings (behind the admin token).
#[component]
pub fn IndividualPage(id: String) -> impl IntoView {
    view! {
        <TokenGate>
            <Individual id=id.clone()/>
        </TokenGate>
    }
}

#[component]
fn Catalog() -> impl IntoView {
    let admin = use_admin();
    let all = RwSignal::new(None::<Vec<IndividualSummary>>);
    let query = RwSignal::new(String::new());
    let message = RwSignal::new(None::<Result<String, String>>);
    spawn_local(async move {
        match admin.get_json("/api/admin/individuals").await {
            Ok(list) => drop(all.try_set(Some(list))),
            Err(problem) => drop(message.try_set(Some(Err(problem)))),
        }
    });
    let rows = move || {
        all.with(|all| {
            let all = all.as_ref()?;
            let found: Vec<IndividualSummary> =
                query.with(|q| find_individuals(all, q).into_iter().cloned().collect());
            let more = found.len().saturating_sub(MAX_LISTED);
            let rows = found
                .into_iter()
                .take(MAX_LISTED)
                .map(|i| {
                    let last = i.last_seen.map_or("never".into(), format::utc_time);
                    let href = Route::Individual(i.id.clone()).href();
                    view! {
                        <tr>
                            <th scope="row"><a href=href>{i.id.clone()}</a></th>
                            <td>{i.n_photos}</td>
                            <td>{i.n_sightings}</td>
                            <td>{last}</td>
                        </tr>
                    }
                })
                .collect_view();
            Some(view! {
                <div class="table-wrap">
                    <table>
                        <thead>
                            <tr>
                                <th scope="col">"Individual"</th>
                                <th scope="col">"Photos"</th>
                                <th scope="col">"Sightings"</th>
                                <th scope="col">"Last seen"</th>
                            </tr>
                        </thead>
                        <tbody>{rows}</tbody>
                    </table>
                </div>
                <p class="small" hidden=more == 0>
                    {format!("{more} more; search to narrow the list.")}
                </p>
            })
        })
    };

    view! {
        <section class="catalog">
            <header class="page-head">
                <h1>"Catalogue"</h1>
                <SightingsCsv admin=admin message=message/>
            </header>
            <Outcome message=message/>
            <label for="find-individual">"Find an individual"</label>
            <input
                id="find-individual"
                type="search"
                placeholder="w_…"
                prop:value=move || query.get()
                on:input=move |ev| query.set(event_target_value(&ev))
            />
            {rows}
        </section>
    }
}

#[component]
fn SightingsCsv(admin: Admin, message: RwSignal<Option<Result<String, String>>>) -> impl IntoView {
    let save = move |_| {
        spawn_local(async move {
            let done = download(
                "/api/admin/sightings.csv",
                admin.token().as_deref(),
                "sightings.csv",
            )
            .await;
            let _ = message.try_set(Some(
                admin
                    .check(done)
                    .map(|()| "Saved sightings.csv.".to_string()),
            ));
        });
    };
    view! { <button type="button" on:click=save>"Export sightings (CSV)"</button> }
}

#[component]
fn Individual(id: String) -> impl IntoView {
    let admin = use_admin();
    let detail = RwSignal::new(None::<IndividualDetail>);
    let message = RwSignal::new(None::<Result<String, String>>);
    let url = format!("/api/admin/individuals/{}", encode_component(&id));
    spawn_local(async move {
        match admin.get_json(&url).await {
            Ok(found) => drop(detail.try_set(Some(found))),
            Err(problem) => drop(message.try_set(Some(Err(problem)))),
        }
    });
    let body = move || {
        detail.get().map(|d| {
            let alt = format!("A photo of {}", d.id);
            let photos = d
                .photos
                .iter()
                .map(|url| {
                    view! {
                        <a href=url.clone()>
                            <img src=url.clone() alt=alt.clone() loading="lazy"/>
                        </a>
                    }
                })
                .collect_view();
            let sightings = d
                .sightings
                .iter()
                .map(|s| {
                    view! {
                        <tr>
                            <td>{format::utc_time(s.sighted_at)}</td>
                            <td>{s.upload_id}</td>
                            <td><a href=s.image.clone()>"photo"</a></td>
                        </tr>
                    }
                })
                .collect_view();
            let n_sightings = d.sightings.len();
            view! {
                <h2>{format!("{} photos", d.photos.len())}</h2>
                <div class="large-thumbs">{photos}</div>
                <h2>{format!("{n_sightings} sightings")}</h2>
                <div class="table-wrap" hidden=n_sightings == 0>
                    <table>
                        <thead>
                            <tr>
                                <th scope="col">"Sighted"</th>
                                <th scope="col">"Upload"</th>
                                <th scope="col">"Photo"</th>
                            </tr>
                        </thead>
                        <tbody>{sightings}</tbody>
                    </table>
                </div>
            }
        })
    };
    view! {
        <section class="individual">
            <header class="page-head">
                <h1>{id.clone()}</h1>
                <a href=Route::Catalog.href()>"All individuals"</a>
            </header>
            <Outcome message=message/>
            {body}
        </section>
    }
}
