//! The review queue: each pending upload's crop beside its candidates'
//! photos, large enough to compare the notches of the trailing edge, with
//! buttons to confirm it as one of them, as another known individual, or
//! as a new one.

use flukeid_shared::api::{ConfirmResponse, UploadRecord};
use leptos::prelude::*;
use leptos::task::spawn_local;

use super::queue::{box_view, known_candidates, typed_choice, Choice};
use crate::admin::{use_admin, Admin, TokenGate};
use crate::api::http::send_json;
use crate::app::Route;
use crate::dashboard::Outcome;
use crate::format;
use crate::identify::results::{candidate_lines, CandidateLine};
use crate::identify::thumbnails;

/// The uploads that wait for a verdict.
const PENDING_URL: &str = "/api/admin/uploads?status=pending";

/// The review queue (behind the admin token).
#[component]
pub fn ReviewPage() -> impl IntoView {
    view! {
        <TokenGate>
            <Queue/>
        </TokenGate>
    }
}

#[derive(Clone, Copy)]
struct Review {
    admin: Admin,
    uploads: RwSignal<Option<Vec<UploadRecord>>>,
    message: RwSignal<Option<Result<String, String>>>,
}

#[component]
fn Queue() -> impl IntoView {
    let review = Review {
        admin: use_admin(),
        uploads: RwSignal::new(None),
        message: RwSignal::new(None),
    };
    load(review);
    let cards = move || {
        review.uploads.get().map(|uploads| {
            if uploads.is_empty() {
                return view! { <p>"Nothing waiting for review."</p> }.into_any();
            }
            uploads
                .into_iter()
                .map(|upload| view! { <UploadCard review=review upload=upload/> })
                .collect_view()
                .into_any()
        })
    };
    let waiting = move || {
        review
            .uploads
            .with(|u| u.as_ref().map(|u| format!("{} waiting", u.len())))
    };

    view! {
        <section class="review">
            <header class="page-head">
                <h1>"Review uploads"</h1>
                <span role="status">{waiting}</span>
                <button type="button" on:click=move |_| load(review)>"Refresh"</button>
                <a href=Route::Catalog.href()>"Catalogue and sightings"</a>
            </header>
            <Outcome message=review.message/>
            {cards}
        </section>
    }
}

fn load(review: Review) {
    spawn_local(async move {
        match review.admin.get_json(PENDING_URL).await {
            Ok(uploads) => {
                let _ = review.uploads.try_set(Some(uploads));
            }
            Err(problem) => {
                let _ = review.message.try_set(Some(Err(problem)));
            }
        }
    });
}

#[component]
fn UploadCard(review: Review, upload: UploadRecord) -> impl IntoView {
    let id = upload.id;
    let typed = RwSignal::new(String::new());
    let problem = RwSignal::new(None::<String>);
    let confirm = move |choice: Choice| confirm(review, id, choice);
    let query = query_view(&upload);
    let known = known_candidates(&upload);
    let candidates = candidate_lines(&flukeid_shared::api::IdentifyResponse {
        upload_id: upload.id,
        run_id: upload.run_id.clone(),
        batch: None,
        candidates: upload.candidates.clone(),
        probably_new: false,
    })
    .into_iter()
    .filter(|line| !line.is_new_whale)
    .map(|line| compare_line(line, confirm))
    .collect_view();
    let other = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        match typed_choice(&typed.get_untracked()) {
            Ok(choice) => {
                problem.set(None);
                confirm(choice);
            }
            Err(p) => problem.set(Some(p)),
        }
    };
    let input_id = format!("other-{id}");
    let created = format::utc_time(upload.created_at);
    let note = format!("{created} · {}", upload.run_id);

    view! {
        <article class="card upload">
            <header>
                <h2>{format!("Upload {id}")}</h2>
                <span class="small">{note}</span>
            </header>
            <div class="compare-grid">
                <figure class="query-figure">{query}<figcaption>"The upload"</figcaption></figure>
                <ol class="candidates">{candidates}</ol>
            </div>
            <div class="verdicts">
                <button type="button" on:click=move |_| confirm(Choice::NewIndividual)>
                    "New individual"
                </button>
                <form class="inline" on:submit=other>
                    <label for=input_id.clone()>"Another known individual"</label>
                    <input
                        id=input_id
                        placeholder="w_…"
                        prop:value=move || typed.get()
                        on:input=move |ev| typed.set(event_target_value(&ev))
                    />
                    <button type="submit">"Confirm"</button>
                </form>
                {move || problem.get().map(|p| view! { <p class="error" role="alert">{p}</p> })}
            </div>
            <p class="small" hidden=known.is_empty()>"Candidates are nearest first."</p>
        </article>
    }
}

/// The uploaded image: the boxed part of a photo, or the whole crop.
fn query_view(upload: &UploadRecord) -> AnyView {
    let Some((x, y, w, h)) = box_view(upload) else {
        let image = upload.image.clone();
        return view! { <img class="query" src=image alt="The uploaded crop"/> }.into_any();
    };
    view! {
        <svg
            class="query"
            viewBox=format!("{x} {y} {w} {h}")
            preserveAspectRatio="xMidYMid meet"
            role="img"
            aria-label="The boxed part of the uploaded photo"
        >
            <image href=upload.image.clone() x="0" y="0"></image>
        </svg>
    }
    .into_any()
}

/// One known candidate beside the upload, with the button that confirms
/// the upload as that individual.
fn compare_line(line: CandidateLine, confirm: impl Fn(Choice) + 'static) -> impl IntoView {
    let href = Route::Individual(line.label.clone()).href();
    let photos = thumbnails(&line.photos, &line.label);
    let chosen = line.label.clone();
    view! {
        <li class="compare">
            <div class="candidate-head">
                <span class="rank">{line.rank}</span>
                <a class="label" href=href>{line.label.clone()}</a>
                <span class="distance">"distance " {line.distance.clone()}</span>
                <span class="confidence">{line.confidence_text()}</span>
                <button
                    type="button"
                    class="primary"
                    on:click=move |_| confirm(Choice::Known(chosen.clone()))
                >
                    {format!("It is {}", line.label)}
                </button>
            </div>
            <div class="large-thumbs">{photos}</div>
        </li>
    }
}

fn confirm(review: Review, upload_id: i64, choice: Choice) {
    spawn_local(async move {
        let url = format!("/api/admin/uploads/{upload_id}/confirm");
        let answer = send_json::<_, ConfirmResponse>(
            "POST",
            &url,
            &choice.request(),
            review.admin.token().as_deref(),
        )
        .await;
        match review.admin.check(answer) {
            Ok(done) => {
                let gallery = if done.added_to_gallery {
                    "it joins the gallery now"
                } else {
                    "it joins the gallery when the next serving run loads"
                };
                let news = format!(
                    "Upload {} is {} (sighting {}); {gallery}.",
                    done.upload_id, done.individual, done.sighting_id
                );
                let _ = review.message.try_set(Some(Ok(news)));
                review.uploads.update(|u| {
                    if let Some(u) = u {
                        u.retain(|x| x.id != upload_id);
                    }
                });
            }
            Err(problem) => {
                let _ = review.message.try_set(Some(Err(problem)));
            }
        }
    });
}
