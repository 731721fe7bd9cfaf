//! The HTML report in a real browser: headless Chromium loads the page of every shipped
//! experiment (and of a trained run) from a file, with no network; the test fails on any
//! script error, console error or failed resource, and writes a screenshot of each page to
//! `target/report-screenshots/` to look at.
//!
//! Skipped, with a printed reason, when no `chromium` is installed; CI installs it and sets
//! `EXPC_REQUIRE_BROWSER=1`, which turns the skip into a failure.

use crate::common::*;
use expc::compile::compile_path;
use std::path::{Path, PathBuf};
use std::process::Command;

fn chromium() -> Option<PathBuf> {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        let found = std::env::var_os("PATH").map(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|c| c.is_file())).unwrap_or_default();
        if found.is_some() {
            return found;
        }
    }
    None
}

fn browser_or_skip(test: &str) -> Option<PathBuf> {
    let b = chromium();
    if b.is_none() {
        assert!(std::env::var_os("EXPC_REQUIRE_BROWSER").is_none(), "{test}: EXPC_REQUIRE_BROWSER is set but no chromium is installed");
        eprintln!("skipped {test}: no chromium on PATH (Debian: apt-get install chromium)");
    }
    b
}

/// Records every error the page meets, exercises it (sorts a column, clicks a node) and writes
/// the outcome into the DOM for `--dump-dom`.
const PROBE: &str = r#"<script>
window.__errs=[];
window.addEventListener('error',function(e){var t=e.target&&e.target!==window?(' resource '+(e.target.src||e.target.href||e.target.tagName)):'';window.__errs.push('error: '+(e.message||e.type)+t);},true);
window.addEventListener('unhandledrejection',function(e){window.__errs.push('unhandled rejection: '+e.reason);});
(function(){var ce=console.error;console.error=function(){window.__errs.push('console.error: '+Array.prototype.join.call(arguments,' '));ce.apply(console,arguments);};})();
window.addEventListener('load',function(){
  var sorted=null;
  try{
    var ths=Array.prototype.slice.call(document.querySelectorAll('#layer-table th'));
    var th=ths.filter(function(t){return t.textContent.indexOf('parameters')===0;})[0];
    if(th){th.click();th.click();
      var idx=ths.indexOf(th);
      var vals=Array.prototype.map.call(document.querySelectorAll('#layer-table tbody tr'),function(r){return parseFloat(r.cells[idx].getAttribute('data-v'));});
      sorted=vals.every(function(v,i){return i===0||vals[i-1]>=v;});}
    var n=document.querySelector('.node');if(n){n.dispatchEvent(new MouseEvent('click',{bubbles:true}));}
  }catch(e){window.__errs.push('exercise: '+e);}
  var out=document.createElement('pre');out.id='expc-probe';
  out.textContent=JSON.stringify({errors:window.__errs,ready:!!window.expcReportReady,rows:document.querySelectorAll('#layer-table tbody tr').length,nodes:document.querySelectorAll('.node').length,sorted:sorted,highlighted:document.querySelectorAll('tr.hl').length});
  document.body.appendChild(out);
});
</script>"#;

const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
];

fn chrome(browser: &Path, profile: &Path, extra: &[String], page: &Path) -> std::process::Output {
    Command::new(browser)
        .args(FLAGS)
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium starts")
}

#[derive(serde::Deserialize, Debug)]
struct Probe {
    errors: Vec<String>,
    ready: bool,
    rows: usize,
    nodes: usize,
    sorted: Option<bool>,
    highlighted: usize,
}

/// Loads `html` with the probe, asserts a clean load, and writes a screenshot to `shot`.
fn check_page(browser: &Path, html: &str, name: &str, shot: &Path) -> Probe {
    let d = TempDir::new("browser");
    let page = d.join(format!("{name}.html"));
    std::fs::write(&page, html.replacen("<head>", &format!("<head>{PROBE}"), 1)).unwrap();
    let out = chrome(browser, &d.join("profile-dom"), &["--dump-dom".into(), "--virtual-time-budget=3000".into()], &page);
    let dom = String::from_utf8_lossy(&out.stdout);
    let start = dom.find("<pre id=\"expc-probe\">").unwrap_or_else(|| panic!("{name}: no probe result; stderr: {}", String::from_utf8_lossy(&out.stderr)));
    let json = &dom[start + "<pre id=\"expc-probe\">".len()..];
    let json = &json[..json.find("</pre>").expect("closed")];
    let json = json.replace("&quot;", "\"").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&");
    let probe: Probe = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{name}: {e}: {json}"));
    assert!(probe.errors.is_empty(), "{name}: errors in the browser: {:#?}", probe.errors);
    assert!(probe.ready, "{name}: the page's script did not run");
    // The page as the original (without the probe) for the screenshot.
    std::fs::write(&page, html).unwrap();
    let out = chrome(browser, &d.join("profile-shot"), &[format!("--screenshot={}", shot.display()), "--window-size=1400,1000".into()], &page);
    assert!(shot.is_file(), "{name}: no screenshot; stderr: {}", String::from_utf8_lossy(&out.stderr));
    probe
}

/// Self-contained: nothing is fetched from anywhere (the SVG namespace is only a name).
fn assert_self_contained(html: &str, name: &str) {
    let outside = html.replace("http://www.w3.org/2000/svg", "");
    for bad in ["http://", "https://", "src=\"//", "href=\"//", "@import"] {
        assert!(!outside.contains(bad), "{name}: the page refers to `{bad}`");
    }
}

fn shots() -> PathBuf {
    let d = repo().join("target/report-screenshots");
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn read(p: &Path) -> std::io::Result<String> {
    std::fs::read_to_string(p)
}

#[test]
fn html_report_of_every_experiment_loads_without_errors() {
    let browser = browser_or_skip("html_report_of_every_experiment_loads_without_errors (the pages are still generated)");
    for f in experiment_files() {
        let c = compile_path(&repo().join(&f), &read);
        let (Some(e), Some(g), Some(a)) = (&c.experiment, &c.graph, &c.analysis) else { panic!("{} compiles", f.display()) };
        let r = expc::report::report(e, g, a, e.data.batch);
        let html = expc::report::html::html(e, g, a, &r, None);
        let stem = f.with_extension("").display().to_string().replace(['/', '\\'], "__");
        assert_self_contained(&html, &stem);
        let Some(browser) = &browser else { continue };
        let p = check_page(browser, &html, &stem, &shots().join(format!("{stem}.png")));
        assert_eq!(p.rows, r.layers.len(), "{stem}");
        assert_eq!(p.nodes, r.layers.len(), "{stem}: one node per layer in the graph");
        assert_eq!(p.sorted, Some(true), "{stem}: sorting by parameters");
        assert_eq!(p.highlighted, 1, "{stem}: clicking a node highlights its row");
    }
}

#[test]
fn html_report_of_a_run_loads_without_errors() {
    let d = TempDir::new("browser-run");
    let spec = repo().join("experiments/smoke/synthetic.exp");
    let out = Command::new(env!("CARGO_BIN_EXE_expc"))
        .current_dir(&*d)
        .args(["run", spec.to_str().unwrap(), "--iterations", "20", "--out", "runs", "--quiet", "--threads", "1"])
        .output()
        .expect("expc runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let run = std::fs::read_dir(d.join("runs/smoke_synthetic")).unwrap().next().unwrap().unwrap().path();
    let page = d.join("report.html");
    let out = Command::new(env!("CARGO_BIN_EXE_expc")).args(["report", run.to_str().unwrap(), "-o", page.to_str().unwrap()]).output().expect("expc runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let html = std::fs::read_to_string(&page).unwrap();
    for part in ["id=\"curves\"", "id=\"filters\"", "data:image/png;base64,", "id=\"summary\"", "id=\"spec\"", "engine_bytes"] {
        assert!(html.contains(part), "the run report has {part}");
    }
    assert_self_contained(&html, "run");
    let Some(browser) = browser_or_skip("html_report_of_a_run_loads_without_errors (the page is still generated)") else { return };
    check_page(&browser, &html, "run", &shots().join("run__smoke_synthetic.png"));
}

/// The model of a random DAG: `(a, b, device, join)` per layer, reading earlier layers.
fn random_graph_html(edges: &[(usize, usize, u32, bool)]) -> (String, usize) {
    let mut body = String::from("  input 8\n  l0: fc 8\n");
    for (i, (a, b, dev, join)) in edges.iter().enumerate() {
        let i = i + 1;
        let (a, b) = (a % i, b % i);
        if *join {
            body.push_str(&format!("  l{i}: add l{a} l{b} device={dev}\n"));
        } else {
            body.push_str(&format!("  l{i}: fc 8 from=l{a} device={dev}\n"));
        }
    }
    let n = edges.len();
    body.push_str(&format!("  out: fc 10 from=l{n}\n  loss: softmax_loss"));
    let text = with_model(&body).replace("dataset cifar10", "dataset synthetic shape=8 classes=10");
    let c = expc::compile::compile_text("g.exp", &text, Path::new("."), &read);
    let (Some(e), Some(g), Some(a)) = (&c.experiment, &c.graph, &c.analysis) else { panic!("compiles: {:?}", c.diagnostics) };
    let r = expc::report::report(e, g, a, 4);
    (expc::report::html::html(e, g, a, &r, None), e.model.layers.len())
}

/// A DAG whose layout trips an assertion in layout-rs's edge straightening (found by the
/// property test below): the graph is still drawn, without that pass.
#[test]
fn html_of_a_graph_that_trips_the_layout_is_still_drawn() {
    let edges = [
        (0, 0, 1, true),
        (464, 0, 0, false),
        (520, 0, 2, false),
        (792, 0, 0, false),
        (178, 0, 1, false),
        (58, 0, 0, false),
        (477, 0, 0, false),
        (189, 109, 0, false),
        (318, 0, 0, false),
        (629, 0, 0, false),
        (272, 28, 0, true),
        (454, 0, 0, false),
        (566, 798, 0, true),
        (5, 527, 1, true),
        (558, 855, 0, true),
        (807, 897, 1, false),
        (373, 31, 0, true),
        (856, 418, 1, false),
        (282, 187, 2, true),
        (480, 533, 0, true),
        (715, 863, 2, true),
        (321, 757, 1, false),
        (277, 976, 2, false),
        (649, 854, 0, true),
        (891, 763, 1, true),
        (1, 499, 1, false),
        (267, 297, 0, true),
        (401, 771, 2, true),
    ];
    let (html, layers) = random_graph_html(&edges);
    assert_eq!(html.matches("class=\"node\"").count(), layers);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 80, ..proptest::prelude::ProptestConfig::default() })]

    /// Random DAGs (skips, joins, a layer read twice, devices) lay out and render without a
    /// panic; every layer is a node of the drawing (or the page says why there is none).
    #[test]
    fn html_of_random_graphs_never_panics(edges in proptest::collection::vec((0usize..1000, 0usize..1000, 0u32..3, proptest::bool::ANY), 1..40)) {
        let (html, layers) = random_graph_html(&edges);
        let nodes = html.matches("class=\"node\"").count();
        proptest::prop_assert!(nodes == layers || (nodes == 0 && html.contains("id=\"no-graph\"")), "{} nodes for {} layers", nodes, layers);
    }
}
