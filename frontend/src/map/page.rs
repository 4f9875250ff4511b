//! The map page: the serving gallery drawn with plotters on a canvas, one
//! colour per individual. Wheel or buttons zoom, dragging pans, the photo
//! under the pointer shows beside it, a click opens the individual, and
//! the tab's last query is drawn with lines to its candidates.

use flukeid_shared::api::{IdentifyResponse, MapPoint, MapResponse};
use leptos::ev::{PointerEvent, WheelEvent};
use leptos::prelude::*;
use leptos::task::spawn_local;
use plotters::prelude::*;
use plotters_canvas::CanvasBackend;
use web_sys::{HtmlCanvasElement, MouseEvent};

use super::view::{colour, query_layout, MapView};
use crate::api::http::get_json;
use crate::app::Route;
use crate::identify::results::{last_query, NEW_WHALE};
use crate::identify::thumbnails;

/// Radius of a point, and how near the pointer must come to it, in pixels.
const POINT_RADIUS: i32 = 4;
const HOVER_RADIUS: f64 = 8.0;

/// What the map canvas does, for screen readers.
const MAP_HELP: &str = "Map of gallery photos. Drag or use arrow keys to pan, the \
    wheel, the buttons or + and - to zoom; click a point, or pick a name in the \
    Individual list, to see that individual.";

/// Zoom per wheel notch or button press.
const ZOOM_STEP: f64 = 1.25;

/// A drag shorter than this many pixels is a click.
const CLICK_SLOP: f64 = 4.0;

#[derive(Clone, Copy)]
struct MapState {
    points: StoredValue<Vec<MapPoint>>,
    n_points: RwSignal<usize>,
    view: RwSignal<Option<MapView>>,
    hovered: RwSignal<Option<(usize, f64, f64)>>,
    chosen: RwSignal<Option<String>>,
    query: StoredValue<Option<IdentifyResponse>>,
    drag: StoredValue<Option<Drag>>,
}

#[derive(Clone, Copy)]
struct Drag {
    last: (f64, f64),
    travelled: f64,
}

impl MapState {
    /// Pans or zooms the view, once there is one.
    fn change_view(&self, change: impl FnOnce(&mut MapView)) {
        self.view.update(|v| {
            if let Some(v) = v {
                change(v);
            }
        });
    }

    /// Sizes the canvas to its box and fits the view to every point.
    fn fit_view(&self, canvas: &HtmlCanvasElement) {
        let size = fit_canvas(canvas);
        self.view
            .set(Some(self.points.with_value(|p| MapView::fit(p, size))));
    }
}

/// The map of the serving gallery.
#[component]
pub fn MapPage() -> impl IntoView {
    let state = MapState {
        points: StoredValue::new(Vec::new()),
        n_points: RwSignal::new(0),
        view: RwSignal::new(None),
        hovered: RwSignal::new(None),
        chosen: RwSignal::new(None),
        query: StoredValue::new(last_query()),
        drag: StoredValue::new(None),
    };
    let problem = RwSignal::new(None::<String>);
    let run_id = RwSignal::new(None::<String>);
    let canvas = NodeRef::<leptos::html::Canvas>::new();

    spawn_local(async move {
        match get_json::<MapResponse>("/api/map", None).await {
            Ok(map) => {
                run_id.set(Some(map.run_id));
                state.points.set_value(map.points);
                state.n_points.set(state.points.with_value(Vec::len));
            }
            Err(failure) => problem.set(Some(failure.message)),
        }
    });
    Effect::new(move |_| {
        let n_points = state.n_points.get();
        let (Some(element), true) = (canvas.get(), n_points > 0) else {
            return;
        };
        if state.view.get_untracked().is_none() {
            state.fit_view(&element);
        }
    });
    Effect::new(move |_| {
        let chosen = state.chosen.get();
        let Some(view) = state.view.get() else { return };
        if let Some(element) = canvas.get() {
            draw(&element, state, &view, chosen.as_deref());
        }
    });

    let zoom = move |factor: f64| {
        state.change_view(|v| v.zoom_at(v.size.0 / 2.0, v.size.1 / 2.0, factor));
    };
    let reset = move |_| {
        if let Some(element) = canvas.get_untracked() {
            state.fit_view(&element);
        }
    };
    let summary = move || {
        run_id.get().map(|r| {
            let n_points = state.n_points.get();
            format!("{n_points} photos embedded by {r}; each colour is one individual")
        })
    };

    view! {
        <section class="map">
            <header class="page-head">
                <h1>"Map of known whales"</h1>
                <span class="small">{summary}</span>
            </header>
            {move || problem.get().map(|p| view! { <p class="error" role="alert">{p}</p> })}
            <div class="buttons" hidden=move || state.n_points.get() == 0>
                <button type="button" on:click=move |_| zoom(ZOOM_STEP)>"Zoom in"</button>
                <button type="button" on:click=move |_| zoom(1.0 / ZOOM_STEP)>"Zoom out"</button>
                <button type="button" on:click=reset>"Show all"</button>
                <IndividualPicker state=state/>
            </div>
            <div class="map-frame" hidden=move || state.n_points.get() == 0>
                <canvas
                    node_ref=canvas
                    tabindex="0"
                    aria-label=MAP_HELP
                    on:wheel=move |ev: WheelEvent| on_wheel(state, ev)
                    on:pointerdown=move |ev: PointerEvent| on_down(state, &canvas, ev)
                    on:pointermove=move |ev: PointerEvent| on_move(state, ev)
                    on:pointerup=move |ev: PointerEvent| on_up(state, ev)
                    on:pointerleave=move |_| state.hovered.set(None)
                    on:keydown=move |ev: leptos::ev::KeyboardEvent| on_key(state, ev)
                ></canvas>
                <Hover state=state/>
            </div>
            <Chosen state=state/>
            <QueryNote state=state/>
        </section>
    }
}

/// Sizes the canvas's pixels to its box on the page; returns the size.
fn fit_canvas(canvas: &HtmlCanvasElement) -> (f64, f64) {
    let (w, h) = (
        canvas.client_width().max(200) as u32,
        canvas.client_height().max(200) as u32,
    );
    canvas.set_width(w);
    canvas.set_height(h);
    (f64::from(w), f64::from(h))
}

fn draw(canvas: &HtmlCanvasElement, state: MapState, view: &MapView, chosen: Option<&str>) {
    let Some(backend) = CanvasBackend::with_canvas_object(canvas.clone()) else {
        return;
    };
    let root = backend.into_drawing_area();
    let _ = root.fill(&WHITE);
    let (x_range, y_range) = view.ranges();
    let Ok(mut chart) = ChartBuilder::on(&root).build_cartesian_2d(x_range, y_range) else {
        return;
    };

    state.points.with_value(|points| {
        let dots = points.iter().map(|p| {
            let (r, g, b) = colour(&p.label);
            Circle::new(
                (p.x as f64, p.y as f64),
                POINT_RADIUS,
                RGBColor(r, g, b).mix(0.8).filled(),
            )
        });
        let _ = chart.draw_series(dots);
        if let Some(chosen) = chosen {
            let rings = points.iter().filter(|p| p.label == chosen).map(|p| {
                Circle::new(
                    (p.x as f64, p.y as f64),
                    POINT_RADIUS + 4,
                    BLACK.stroke_width(2),
                )
            });
            let _ = chart.draw_series(rings);
        }
        let layout = state
            .query
            .with_value(|q| q.as_ref().and_then(|q| query_layout(points, q)));
        if let Some(layout) = layout {
            let lines = layout.candidates.iter().map(|(_, centre)| {
                PathElement::new(
                    vec![layout.query, *centre],
                    RGBColor(40, 40, 40).stroke_width(1),
                )
            });
            let _ = chart.draw_series(lines);
            let marker = Cross::new(layout.query, 8, RGBColor(200, 0, 80).stroke_width(3));
            let _ = chart.draw_series(std::iter::once(marker));
        }
    });
    let _ = root.present();
}

fn on_wheel(state: MapState, ev: WheelEvent) {
    ev.prevent_default();
    let factor = if ev.delta_y() < 0.0 {
        ZOOM_STEP
    } else {
        1.0 / ZOOM_STEP
    };
    let (x, y) = offset(&ev);
    state.change_view(|v| v.zoom_at(x, y, factor));
}

fn on_down(state: MapState, canvas: &NodeRef<leptos::html::Canvas>, ev: PointerEvent) {
    if let Some(element) = canvas.get_untracked() {
        let _ = element.set_pointer_capture(ev.pointer_id());
    }
    let at = offset(&ev);
    state.drag.set_value(Some(Drag {
        last: at,
        travelled: 0.0,
    }));
}

fn on_move(state: MapState, ev: PointerEvent) {
    let at = offset(&ev);
    if let Some(mut drag) = state.drag.get_value() {
        let (dx, dy) = (at.0 - drag.last.0, at.1 - drag.last.1);
        drag.travelled += dx.hypot(dy);
        drag.last = at;
        state.drag.set_value(Some(drag));
        if drag.travelled > CLICK_SLOP {
            state.hovered.set(None);
            state.change_view(|v| v.pan_by(dx, dy));
        }
        return;
    }
    let Some(view) = state.view.get_untracked() else {
        return;
    };
    let nearest = state
        .points
        .with_value(|p| view.nearest(p, at.0, at.1, HOVER_RADIUS));
    state.hovered.set(nearest.map(|idx| (idx, at.0, at.1)));
}

fn on_up(state: MapState, ev: PointerEvent) {
    let Some(drag) = state.drag.get_value() else {
        return;
    };
    state.drag.set_value(None);
    if drag.travelled > CLICK_SLOP {
        return;
    }
    let Some(view) = state.view.get_untracked() else {
        return;
    };
    let at = offset(&ev);
    let nearest = state.points.with_value(|p| {
        view.nearest(p, at.0, at.1, HOVER_RADIUS)
            .map(|idx| p[idx].label.clone())
    });
    state.chosen.set(nearest);
}

fn on_key(state: MapState, ev: leptos::ev::KeyboardEvent) {
    const STEP: f64 = 40.0;
    let (dx, dy, factor) = match ev.key().as_str() {
        "ArrowLeft" => (STEP, 0.0, 1.0),
        "ArrowRight" => (-STEP, 0.0, 1.0),
        "ArrowUp" => (0.0, STEP, 1.0),
        "ArrowDown" => (0.0, -STEP, 1.0),
        "+" | "=" => (0.0, 0.0, ZOOM_STEP),
        "-" => (0.0, 0.0, 1.0 / ZOOM_STEP),
        _ => return,
    };
    ev.prevent_default();
    state.change_view(|v| {
        v.pan_by(dx, dy);
        v.zoom_at(v.size.0 / 2.0, v.size.1 / 2.0, factor);
    });
}

/// Where a pointer event happened, in the canvas's pixels.
fn offset(ev: &MouseEvent) -> (f64, f64) {
    (f64::from(ev.offset_x()), f64::from(ev.offset_y()))
}

/// The individuals on the map in a list, so that each can be picked (and
/// ringed on the map) with the keyboard as well as by clicking a point.
#[component]
fn IndividualPicker(state: MapState) -> impl IntoView {
    let labels = Memo::new(move |_| {
        state.n_points.track();
        let mut labels: Vec<String> = state
            .points
            .with_value(|p| p.iter().map(|p| p.label.clone()).collect());
        labels.sort();
        labels.dedup();
        labels
    });
    let options = move || {
        labels
            .get()
            .into_iter()
            .map(|label| {
                let shown = label.clone();
                let chosen = label.clone();
                let is_chosen = move || state.chosen.with(|c| c.as_ref() == Some(&chosen));
                view! { <option value=label selected=is_chosen>{shown}</option> }
            })
            .collect_view()
    };
    view! {
        <label for="map-individual">"Individual"</label>
        <select
            id="map-individual"
            on:change=move |ev| {
                let value = event_target_value(&ev);
                state.chosen.set((!value.is_empty()).then_some(value));
            }
        >
            <option value="" selected=move || state.chosen.with(Option::is_none)>
                "None chosen"
            </option>
            {options}
        </select>
    }
}

#[component]
fn Hover(state: MapState) -> impl IntoView {
    move || {
        let (idx, x, y) = state.hovered.get()?;
        let point = state.points.with_value(|p| p.get(idx).cloned())?;
        let style = format!("left: {}px; top: {}px", x + 12.0, y + 12.0);
        Some(view! {
            <div class="map-hover" style=style>
                <img src=point.image.clone() alt=format!("A photo of {}", point.label)/>
                <span>{point.label}</span>
            </div>
        })
    }
}

#[component]
fn Chosen(state: MapState) -> impl IntoView {
    move || {
        let label = state.chosen.get()?;
        let photos = state.points.with_value(|points| {
            points
                .iter()
                .filter(|p| p.label == label)
                .map(|p| p.image.clone())
                .collect::<Vec<_>>()
        });
        let images = thumbnails(&photos, &label);
        let unknown = label == NEW_WHALE;
        let title = if unknown {
            "Unidentified whales (new_whale)".to_string()
        } else {
            label.clone()
        };
        let link = (!unknown).then(|| {
            let href = Route::Individual(label.clone()).href();
            view! { <a href=href>"Sightings in the catalogue (admin)"</a> }
        });
        Some(view! {
            <aside class="card chosen" aria-live="polite">
                <header>
                    <h2>{title}</h2>
                    {link}
                    <button type="button" on:click=move |_| state.chosen.set(None)>"Close"</button>
                </header>
                <p class="small">{format!("{} photos on the map", photos.len())}</p>
                <div class="large-thumbs">{images}</div>
            </aside>
        })
    }
}

#[component]
fn QueryNote(state: MapState) -> impl IntoView {
    let note = state.query.with_value(|q| {
        q.as_ref().map(|q| {
            format!(
                "The cross is your last photo (upload {}), placed among its candidates; \
                 lines lead to each candidate's photos.",
                q.upload_id
            )
        })
    });
    view! { <p class="small">{note}</p> }
}
