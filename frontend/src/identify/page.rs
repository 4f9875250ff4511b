//! The identification page: choose, drop or take photos, box each fluke,
//! watch the crop preview, send the crops and read the candidates as they
//! stream in.

use flukeid_shared::api::{IdentifyResponse, ModelStatus, StatusResponse};
use flukeid_shared::crop::{BoundingBox, CropError, CropGeometry};
use leptos::ev::{DragEvent, KeyboardEvent, PointerEvent};
use leptos::prelude::*;
use leptos::task::spawn_local;
use web_sys::{File, FileList, HtmlInputElement};

use super::batch::{Batch, PhotoState};
use super::editor::{BoxEditor, Hit, Point, ScreenMap};
use super::photo::{self, Photo};
use super::preview::{self, CropPlan};
use super::results::{candidate_lines, headline, remember};
use super::upload::identify_crop;
use crate::api::http::get_json;
use crate::api::socket::Socket;
use crate::app::Route;
use crate::format;

/// How thick a box edge is to the pointer, in CSS pixels: fingers need
/// more room than a mouse.
const MOUSE_TOLERANCE: f64 = 8.0;
const TOUCH_TOLERANCE: f64 = 20.0;

/// What the photo canvas does, for screen readers.
const BOX_HELP: &str = "The photo. Drag to draw a box around the fluke, drag the box \
    to move it, drag its edges to resize it. With the keyboard: arrow keys move \
    the box, Shift with arrows resizes it, Delete removes it.";

/// How often to ask again while the serving model loads.
const STATUS_POLL_MS: u64 = 3000;

/// The page's state, shared by its parts.
#[derive(Clone, Copy)]
struct State {
    status: RwSignal<Option<Result<StatusResponse, String>>>,
    photos: StoredValue<Vec<Photo>, LocalStorage>,
    names: RwSignal<Vec<String>>,
    editors: RwSignal<Vec<BoxEditor>>,
    selected: RwSignal<usize>,
    batch: RwSignal<Batch>,
    sending: RwSignal<bool>,
    notice: RwSignal<Option<String>>,
}

/// The selected photo as its two canvases draw it.
struct Selection {
    photo: Photo,
    bbox: Option<BoundingBox>,
    /// The crop of `bbox` (or of the whole photo) for the serving geometry.
    plan: Result<CropPlan, CropError>,
}

impl State {
    fn new() -> Self {
        Self {
            status: RwSignal::new(None),
            photos: StoredValue::new_local(Vec::new()),
            names: RwSignal::new(Vec::new()),
            editors: RwSignal::new(Vec::new()),
            selected: RwSignal::new(0),
            batch: RwSignal::new(Batch::new(&new_group())),
            sending: RwSignal::new(false),
            notice: RwSignal::new(None),
        }
    }

    /// The serving run's crop geometry, or the default before one serves.
    fn geometry(&self) -> CropGeometry {
        self.status
            .with(|s| {
                s.as_ref()
                    .and_then(|s| s.as_ref().ok())
                    .and_then(|s| s.serving.as_ref())
                    .map(|s| s.geometry)
            })
            .unwrap_or_default()
    }

    /// The selected photo with its box and crop plan, or `None` before a
    /// photo is chosen. It reads the selection, the boxes and the status
    /// tracked, so an effect that calls it redraws when any of them changes.
    fn selection(&self) -> Option<Selection> {
        let idx = self.selected.get();
        let bbox = self.editors.with(|all| all.get(idx).map(BoxEditor::bbox));
        let geometry = self.geometry();
        let photo = self.photos.with_value(|all| all.get(idx).cloned());
        let (photo, bbox) = (photo?, bbox?);
        let plan = preview::plan(&geometry, bbox, photo.width, photo.height);
        Some(Selection { photo, bbox, plan })
    }

    fn selected_size(&self) -> Option<(u32, u32)> {
        let idx = self.selected.get_untracked();
        self.photos
            .with_value(|all| all.get(idx).map(|p| (p.width, p.height)))
    }

    /// Reads the selected photo's editor, untracked.
    fn peek<T>(&self, read: impl FnOnce(&BoxEditor) -> T) -> Option<T> {
        let idx = self.selected.get_untracked();
        self.editors.with_untracked(|all| all.get(idx).map(read))
    }

    fn edit(&self, change: impl FnOnce(&mut BoxEditor)) {
        let idx = self.selected.get_untracked();
        self.editors.update(|all| {
            if let Some(editor) = all.get_mut(idx) {
                change(editor);
            }
        });
    }

    fn clear(&self) {
        self.photos.set_value(Vec::new());
        self.names.set(Vec::new());
        self.editors.set(Vec::new());
        self.selected.set(0);
        self.batch.set(Batch::new(&new_group()));
        self.notice.set(None);
    }
}

/// The identification page.
#[component]
pub fn IdentifyPage() -> impl IntoView {
    let state = State::new();
    fetch_status(state.status);
    listen_for_results(state.batch);

    view! {
        <section class="identify">
            <h1>"Identify a humpback whale"</h1>
            <StatusLine status=state.status/>
            <PhotoPicker state=state/>
            {move || state.notice.get().map(|n| view! { <p class="error" role="alert">{n}</p> })}
            <div class="editor" hidden=move || state.names.with(Vec::is_empty)>
                <PhotoTabs state=state/>
                <BoxCanvas state=state/>
                <CropPreview state=state/>
                <SendBar state=state/>
            </div>
            <Results state=state/>
        </section>
    }
}

/// Asks for the server's status, and again while the model loads.
fn fetch_status(status: RwSignal<Option<Result<StatusResponse, String>>>) {
    spawn_local(async move {
        let answer = get_json::<StatusResponse>("/api/status", None)
            .await
            .map_err(|f| f.message);
        let loading = matches!(&answer, Ok(s) if matches!(s.model, ModelStatus::Loading { .. }));
        status.set(Some(answer));
        if loading {
            set_timeout(
                move || fetch_status(status),
                std::time::Duration::from_millis(STATUS_POLL_MS),
            );
        }
    });
}

/// Subscribes to every identification result; the batch keeps its own.
fn listen_for_results(batch: RwSignal<Batch>) {
    let socket = StoredValue::new_local(None::<Socket>);
    let on_message = move |text: String| {
        let Ok(response) = serde_json::from_str::<IdentifyResponse>(&text) else {
            return;
        };
        let mut claimed = false;
        batch.update(|b| claimed = b.streamed(response.clone()).is_some());
        if claimed {
            remember(&response);
        }
    };
    // Without the socket, each upload's own answer still arrives.
    if let Ok(opened) = Socket::connect("/api/ws/identify", |_| {}, on_message, |_, _| {}) {
        socket.set_value(Some(opened));
    }
    on_cleanup(move || socket.set_value(None));
}

#[component]
fn StatusLine(status: RwSignal<Option<Result<StatusResponse, String>>>) -> impl IntoView {
    move || {
        let (sentence, kind) = match status.get()? {
            Ok(s) => status_sentence(s),
            Err(message) => (
                format!("The server's status is unknown: {message}"),
                "warning",
            ),
        };
        Some(view! { <p class=format!("status {kind}") role="status">{sentence}</p> })
    }
}

#[component]
fn PhotoPicker(state: State) -> impl IntoView {
    let dragging = RwSignal::new(false);
    let take = move |list: Option<FileList>| {
        let files: Vec<File> = list
            .map(|l| (0..l.length()).filter_map(|i| l.get(i)).collect())
            .unwrap_or_default();
        add_files(state, files);
    };
    let on_change = move |ev: leptos::ev::Event| {
        let input: HtmlInputElement = event_target(&ev);
        take(input.files());
        // Choosing the same file again must fire `change` again.
        input.set_value("");
    };
    let on_drop = move |ev: DragEvent| {
        ev.prevent_default();
        dragging.set(false);
        take(ev.data_transfer().and_then(|d| d.files()));
    };
    let cannot_clear = move || state.sending.get() || state.names.with(Vec::is_empty);

    view! {
        <div
            class="drop-zone"
            class:dragging=move || dragging.get()
            on:dragover=move |ev: DragEvent| {
                ev.prevent_default();
                dragging.set(true);
            }
            on:dragleave=move |_| dragging.set(false)
            on:drop=on_drop
        >
            <p>"Drop photos of flukes here, or"</p>
            <div class="buttons">
                <label class="button" for="pick-photos">"Choose photos"</label>
                <input
                    id="pick-photos"
                    class="visually-hidden"
                    type="file"
                    accept="image/*"
                    multiple
                    on:change=on_change
                />
                <label class="button" for="take-photo">"Take a photo"</label>
                <input
                    id="take-photo"
                    class="visually-hidden"
                    type="file"
                    accept="image/*"
                    capture="environment"
                    on:change=on_change
                />
                <button type="button" on:click=move |_| state.clear() disabled=cannot_clear>
                    "Clear"
                </button>
            </div>
        </div>
    }
}

/// Decodes the chosen files in order and adds those that are images.
fn add_files(state: State, files: Vec<File>) {
    spawn_local(async move {
        let mut problems = Vec::new();
        for file in files {
            match photo::load(&file).await {
                Ok(loaded) => {
                    let editor = BoxEditor::new(loaded.width, loaded.height);
                    let name = loaded.name.clone();
                    state.photos.update_value(|all| all.push(loaded));
                    state.editors.update(|all| all.push(editor));
                    state.batch.update(|b| {
                        b.add();
                    });
                    state.names.update(|all| all.push(name));
                    state.selected.set(state.names.with_untracked(Vec::len) - 1);
                }
                Err(message) => problems.push(message),
            }
        }
        state
            .notice
            .set((!problems.is_empty()).then(|| problems.join(" ")));
    });
}

#[component]
fn PhotoTabs(state: State) -> impl IntoView {
    move || {
        let names = state.names.get();
        (names.len() > 1).then(|| {
            let tabs = names
                .into_iter()
                .enumerate()
                .map(|(idx, name)| {
                    let current = move || state.selected.get() == idx;
                    view! {
                        <button
                            type="button"
                            class="tab"
                            class:current=current
                            aria-pressed=move || current().to_string()
                            on:click=move |_| state.selected.set(idx)
                        >
                            {numbered(idx, &name)}
                        </button>
                    }
                })
                .collect_view();
            view! { <div class="tabs" role="group" aria-label="Photos">{tabs}</div> }
        })
    }
}

#[component]
fn BoxCanvas(state: State) -> impl IntoView {
    let canvas = NodeRef::<leptos::html::Canvas>::new();
    let cursor = RwSignal::new("crosshair");

    Effect::new(move |_| {
        let selection = state.selection();
        let (Some(element), Some(shown)) = (canvas.get(), selection) else {
            return;
        };
        let region = shown.plan.ok().map(|p| p.region);
        photo::draw_photo(&element, &shown.photo, shown.bbox, region);
    });

    let locate = move |ev: &PointerEvent| -> Option<(Point, ScreenMap)> {
        let element = canvas.get_untracked()?;
        let rect = element.get_bounding_client_rect();
        let map = ScreenMap::new(state.selected_size()?, (rect.width(), rect.height()));
        let point = map.to_image(
            ev.client_x() as f64 - rect.left(),
            ev.client_y() as f64 - rect.top(),
        );
        Some((point, map))
    };
    let tolerance = |ev: &PointerEvent, map: &ScreenMap| {
        map.tolerance(if ev.pointer_type() == "touch" {
            TOUCH_TOLERANCE
        } else {
            MOUSE_TOLERANCE
        })
    };
    let on_down = move |ev: PointerEvent| {
        let Some((point, map)) = locate(&ev) else {
            return;
        };
        ev.prevent_default();
        if let Some(element) = canvas.get_untracked() {
            let _ = element.set_pointer_capture(ev.pointer_id());
            let _ = element.focus();
        }
        state.edit(|e| e.pointer_down(point, tolerance(&ev, &map)));
    };
    let on_move = move |ev: PointerEvent| {
        let Some((point, map)) = locate(&ev) else {
            return;
        };
        if state.peek(BoxEditor::is_dragging) == Some(true) {
            state.edit(|e| {
                e.pointer_move(point);
            });
            return;
        }
        let hit = state.peek(|e| e.hit(point, tolerance(&ev, &map)));
        cursor.set(match hit {
            Some(Hit::Edge(handle)) => handle.cursor(),
            Some(Hit::Inside) => "move",
            _ => "crosshair",
        });
    };
    let on_up = move |ev: PointerEvent| {
        if let Some((point, _)) = locate(&ev) {
            state.edit(|e| e.pointer_up(point));
        }
    };
    let on_key = move |ev: KeyboardEvent| {
        let Some((width, height)) = state.selected_size() else {
            return;
        };
        let step = (width.max(height) as f64 / 100.0).max(1.0);
        let (dx, dy) = match ev.key().as_str() {
            "ArrowLeft" => (-step, 0.0),
            "ArrowRight" => (step, 0.0),
            "ArrowUp" => (0.0, -step),
            "ArrowDown" => (0.0, step),
            "Delete" | "Backspace" => {
                ev.prevent_default();
                state.edit(|e| e.set_box(None));
                return;
            }
            _ => return,
        };
        ev.prevent_default();
        state.edit(|e| e.nudge(dx, dy, ev.shift_key()));
    };
    let centred_box = move |_| {
        let Some((w, h)) = state.selected_size() else {
            return;
        };
        let (w, h) = (w as f64, h as f64);
        state.edit(|e| e.set_box(Some(BoundingBox::new(w * 0.2, h * 0.3, w * 0.8, h * 0.7))));
    };
    let caption = move || {
        let idx = state.selected.get();
        let boxed = state
            .editors
            .with(|all| all.get(idx).and_then(BoxEditor::bbox))
            .is_some();
        if boxed {
            "Yellow: your box. Dashed: the part of the photo the network sees."
        } else {
            "No box yet: the whole photo will be used. Drag across the fluke to box it."
        }
    };

    view! {
        <figure class="photo">
            <canvas
                node_ref=canvas
                tabindex="0"
                aria-label=BOX_HELP
                style:cursor=move || cursor.get()
                on:pointerdown=on_down
                on:pointermove=on_move
                on:pointerup=on_up
                on:pointercancel=move |_| state.edit(BoxEditor::cancel)
                on:keydown=on_key
            ></canvas>
            <figcaption>
                {caption}
                " "
                <button type="button" class="link" on:click=centred_box>
                    "Start from a centred box"
                </button>
            </figcaption>
        </figure>
    }
}

#[component]
fn CropPreview(state: State) -> impl IntoView {
    let canvas = NodeRef::<leptos::html::Canvas>::new();
    let problem = RwSignal::new(None::<String>);
    Effect::new(move |_| {
        let selection = state.selection();
        let (Some(element), Some(shown)) = (canvas.get(), selection) else {
            return;
        };
        match shown.plan {
            Ok(plan) => {
                photo::draw_crop(&element, &shown.photo, &plan);
                problem.set(None);
            }
            Err(e) => problem.set(Some(format!("This box cannot be cropped: {e}."))),
        }
    });
    let caption = move || {
        let g = state.geometry();
        format!(
            "What the network sees: a {}x{} crop, never stretched.",
            g.width, g.height
        )
    };

    view! {
        <figure class="crop-preview">
            <canvas
                node_ref=canvas
                aria-label="The crop that will be sent, as the network sees it"
            ></canvas>
            <figcaption>
                {caption}
                {move || problem.get().map(|p| view! { <span class="error">" " {p}</span> })}
            </figcaption>
        </figure>
    }
}

#[component]
fn SendBar(state: State) -> impl IntoView {
    let waiting = move || state.batch.with(|b| b.tally().waiting);
    let send = move |_| send_waiting(state);
    let label = move || match waiting() {
        0 => "Nothing left to identify".to_string(),
        1 => "Identify".to_string(),
        n => format!("Identify {n} photos"),
    };
    let progress = move || {
        let tally = state.batch.with(Batch::tally);
        let started = tally.busy + tally.done + tally.failed > 0;
        started.then(|| {
            let (done, busy, failed) = (tally.done, tally.busy, tally.failed);
            format!("{done} done, {busy} in progress, {failed} failed")
        })
    };

    view! {
        <div class="send-bar">
            <button
                type="button"
                class="primary"
                on:click=send
                disabled=move || state.sending.get() || waiting() == 0
            >
                {label}
            </button>
            {progress}
        </div>
    }
}

/// Crops and sends every waiting photo, one after the other, so results
/// stream in while the rest upload.
fn send_waiting(state: State) {
    if state.sending.get_untracked() {
        return;
    }
    state.sending.set(true);
    spawn_local(async move {
        let geometry = state.geometry();
        let n_photos = state.batch.with_untracked(Batch::len);
        for idx in 0..n_photos {
            let waiting = state
                .batch
                .with_untracked(|b| matches!(b.state(idx), Some(PhotoState::Waiting)));
            let chosen = state.photos.with_value(|all| all.get(idx).cloned());
            let (true, Some(chosen)) = (waiting, chosen) else {
                continue;
            };
            let bbox = state
                .editors
                .with_untracked(|all| all.get(idx).and_then(BoxEditor::bbox));
            state.batch.update(|b| b.uploading(idx, 0.0, 1.0));
            match send_one(state, idx, &chosen, bbox, &geometry).await {
                Ok(response) => {
                    remember(&response);
                    state.batch.update(|b| b.answered(idx, response));
                }
                Err(message) => state.batch.update(|b| b.failed(idx, message)),
            }
        }
        state.sending.set(false);
    });
}

async fn send_one(
    state: State,
    idx: usize,
    chosen: &Photo,
    bbox: Option<BoundingBox>,
    geometry: &CropGeometry,
) -> Result<IdentifyResponse, String> {
    let plan = preview::plan(geometry, bbox, chosen.width, chosen.height)
        .map_err(|e| format!("The box of {} cannot be cropped: {e}.", chosen.name))?;
    let crop = photo::crop_png(chosen, &plan).await?;
    let tag = state.batch.with_untracked(|b| b.tag(idx));
    let progress = move |sent, total| state.batch.update(|b| b.uploading(idx, sent, total));
    identify_crop(&crop, &tag, progress).await
}

#[component]
fn Results(state: State) -> impl IntoView {
    move || {
        let names = state.names.get();
        let cards = names
            .into_iter()
            .enumerate()
            .map(|(idx, name)| view! { <ResultCard state=state idx=idx name=name/> })
            .collect_view();
        view! { <div class="results" aria-live="polite">{cards}</div> }
    }
}

#[component]
fn ResultCard(state: State, idx: usize, name: String) -> impl IntoView {
    let photo_state = Memo::new(move |_| state.batch.with(|b| b.state(idx).cloned()));
    let edit = move |_| state.selected.set(idx);
    let again = move |_| {
        state.batch.update(|b| b.again(idx));
        state.selected.set(idx);
    };
    let finished = move || photo_state.with(|s| s.as_ref().is_some_and(PhotoState::is_finished));
    let body = move || match photo_state.get()? {
        PhotoState::Waiting => Some(view! { <p>"Waiting to be sent."</p> }.into_any()),
        PhotoState::Uploading { sent, total } => {
            let text = format!(
                "Uploading the crop: {} of {}",
                format::bytes(sent),
                format::bytes(total)
            );
            Some(view! { <p>{text}</p> }.into_any())
        }
        PhotoState::Embedding => {
            Some(view! { <p>"Comparing with the known whales…"</p> }.into_any())
        }
        PhotoState::Failed(message) => {
            Some(view! { <p class="error" role="alert">{message}</p> }.into_any())
        }
        PhotoState::Done(response) => Some(view! { <Answer response=response/> }.into_any()),
    };
    view! {
        <article class="card result">
            <header>
                <h2>{numbered(idx, &name)}</h2>
                <button type="button" on:click=edit>"Show box"</button>
                <button
                    type="button"
                    on:click=again
                    hidden=move || !finished()
                >
                    "Send again"
                </button>
            </header>
            <progress
                max="1"
                value=move || photo_state.with(|s| s.as_ref().map_or(0.0, PhotoState::progress))
                aria-label="Progress"
            ></progress>
            {body}
        </article>
    }
}

#[component]
fn Answer(response: IdentifyResponse) -> impl IntoView {
    let title = headline(&response);
    let lines = candidate_lines(&response)
        .into_iter()
        .map(|line| {
            let label = if line.is_new_whale {
                view! { <span class="label">{line.label.clone()}</span> }.into_any()
            } else {
                let href = Route::Individual(line.label.clone()).href();
                view! { <a class="label" href=href>{line.label.clone()}</a> }.into_any()
            };
            let photos = thumbnails(&line.photos, &line.label);
            view! {
                <li class="candidate" class:new-whale=line.is_new_whale>
                    <div class="candidate-head">
                        <span class="rank">{line.rank}</span>
                        {label}
                        <span class="distance">"distance " {line.distance.clone()}</span>
                        <meter min="0" max="100" value=line.percent aria-label="Confidence"></meter>
                        <span class="confidence">{line.confidence_text()}</span>
                    </div>
                    <div class="thumbs">{photos}</div>
                </li>
            }
        })
        .collect_view();
    view! {
        <p class="headline" class:new-whale=response.probably_new>{title}</p>
        <ol class="candidates">{lines}</ol>
        <p class="small">{format!("Upload {} · {}", response.upload_id, response.run_id)}</p>
    }
}

/// What the status line says about the serving model, and its kind:
/// `info` when photos can be identified, `warning` when they cannot.
fn status_sentence(status: StatusResponse) -> (String, &'static str) {
    if let (ModelStatus::Ready { .. }, Some(serving)) = (&status.model, &status.serving) {
        let sentence = format!(
            "Comparing with {} individuals ({} photos) using {}; crops are {}x{}.",
            serving.n_individuals,
            serving.gallery_size,
            serving.run_id,
            serving.geometry.width,
            serving.geometry.height
        );
        return (sentence, "info");
    }
    let sentence = match status.model {
        ModelStatus::Loading {
            run_id,
            done,
            total,
        } => format!(
            "The model of {run_id} is loading its gallery ({done} of {total}); \
             try in a moment."
        ),
        ModelStatus::Failed { run_id, message } => {
            format!("The model of {run_id} failed to load: {message}")
        }
        _ => "No whale model is serving yet: photos can be boxed, but not identified until \
              an admin makes a trained run the serving run."
            .to_string(),
    };
    (sentence, "warning")
}

/// The photos of an individual as small lazy images, as an answer, the
/// review queue and the map show them.
pub fn thumbnails(urls: &[String], label: &str) -> impl IntoView {
    urls.iter()
        .map(|url| {
            let alt = format!("A photo of {label}");
            view! { <img src=url.clone() alt=alt loading="lazy"/> }
        })
        .collect_view()
}

/// A photo's name with its place in the batch, counted from one.
fn numbered(idx: usize, name: &str) -> String {
    format!("{}. {name}", idx + 1)
}

/// A fresh batch group: letters and digits only, unlikely to collide with
/// another tab's.
fn new_group() -> String {
    let random = (js_sys::Math::random() * f64::from(u32::MAX)) as u32;
    format!("b{random:08x}")
}
