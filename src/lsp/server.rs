//! The JSON-RPC loop of `expc lsp` over an `lsp_server::Connection` (stdio in the binary, in
//! memory in tests). Nothing here prints: messages go through the connection only.

use super::{analyze, format, uri_path, Analysis};
use lsp_server::{Connection, ErrorCode, Message, Notification, Request, RequestId, Response};
use lsp_types as lsp;
use lsp_types::notification::{self as n, Notification as _};
use lsp_types::request::{self as r, Request as _};
use lsp_types::Url;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// What the server can do, as announced in `initialize`.
pub fn capabilities() -> lsp::ServerCapabilities {
    lsp::ServerCapabilities {
        text_document_sync: Some(lsp::TextDocumentSyncCapability::Kind(lsp::TextDocumentSyncKind::FULL)),
        hover_provider: Some(lsp::HoverProviderCapability::Simple(true)),
        definition_provider: Some(lsp::OneOf::Left(true)),
        references_provider: Some(lsp::OneOf::Left(true)),
        document_symbol_provider: Some(lsp::OneOf::Left(true)),
        document_formatting_provider: Some(lsp::OneOf::Left(true)),
        completion_provider: Some(lsp::CompletionOptions {
            trigger_characters: Some(vec!["=".into(), "[".into(), ",".into(), " ".into(), ":".into()]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Open documents and their latest analyses.
#[derive(Default)]
pub struct State {
    texts: HashMap<Url, String>,
    analyses: HashMap<Url, Analysis>,
    /// Documents whose text (or a base's) changed since their last analysis.
    dirty: BTreeSet<Url>,
}

impl State {
    fn read(&self, p: &Path) -> std::io::Result<String> {
        let canon = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        for (uri, text) in &self.texts {
            let q = uri_path(uri);
            if q == p || std::fs::canonicalize(&q).unwrap_or(q) == canon {
                return Ok(text.clone());
            }
        }
        std::fs::read_to_string(p)
    }

    /// The analysis of the latest text of `uri` (made now if the text changed).
    pub fn analysis(&mut self, uri: &Url) -> Option<&Analysis> {
        if self.dirty.remove(uri) || !self.analyses.contains_key(uri) {
            let text = self.texts.get(uri)?.clone();
            let a = analyze(uri, &text, &|p: &Path| self.read(p));
            self.analyses.insert(uri.clone(), a);
        }
        self.analyses.get(uri)
    }

    fn changed(&mut self, uri: &Url) {
        self.dirty.insert(uri.clone());
        // Documents that extend this one are checked again too.
        let path = uri_path(uri);
        let path = std::fs::canonicalize(&path).unwrap_or(path);
        let dependents: Vec<Url> = self.analyses.iter().filter(|(_, a)| a.dependencies().contains(&path)).map(|(u, _)| u.clone()).collect();
        self.dirty.extend(dependents);
    }

    fn open(&mut self, uri: Url, text: String) {
        self.texts.insert(uri.clone(), text);
        self.changed(&uri);
    }

    fn close(&mut self, uri: &Url) {
        self.texts.remove(uri);
        self.analyses.remove(uri);
        self.dirty.remove(uri);
    }
}

fn params<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, String> {
    serde_json::from_value(v).map_err(|e| e.to_string())
}

/// Runs the server on `conn` until `shutdown`/`exit` (or the client goes away).
pub fn serve(conn: &Connection) -> Result<(), Error> {
    let caps = serde_json::to_value(capabilities())?;
    let (id, _params) = conn.initialize_start()?;
    conn.initialize_finish(
        id,
        serde_json::json!({
            "capabilities": caps,
            "serverInfo": { "name": "expc", "version": env!("CARGO_PKG_VERSION") },
        }),
    )?;
    let mut state = State::default();
    loop {
        let Ok(first) = conn.receiver.recv() else { return Ok(()) };
        // Everything already queued: apply all text changes first, so that only the latest
        // text of each document is analysed.
        let mut batch = vec![first];
        while let Ok(m) = conn.receiver.try_recv() {
            batch.push(m);
        }
        let mut touched: BTreeSet<Url> = BTreeSet::new();
        for msg in batch {
            match msg {
                Message::Request(req) => {
                    // Answer on the latest text, after showing its diagnostics.
                    publish(conn, &mut state, &mut touched)?;
                    if conn.handle_shutdown(&req)? {
                        return Ok(());
                    }
                    let resp = handle_request(&mut state, req);
                    conn.sender.send(Message::Response(resp))?;
                }
                Message::Notification(not) => {
                    if not.method == n::Exit::METHOD {
                        return Ok(());
                    }
                    touched.extend(handle_notification(&mut state, not));
                }
                Message::Response(_) => {}
            }
        }
        publish(conn, &mut state, &mut touched)?;
    }
}

/// Publishes diagnostics for every document whose text or whose base changed.
fn publish(conn: &Connection, state: &mut State, touched: &mut BTreeSet<Url>) -> Result<(), Error> {
    let mut uris: BTreeSet<Url> = state.dirty.clone();
    uris.append(touched);
    for uri in uris {
        if !state.texts.contains_key(&uri) {
            // Closed: clear what was shown.
            send_diagnostics(conn, uri, vec![])?;
            continue;
        }
        let diags = state.analysis(&uri).map(Analysis::diagnostics).unwrap_or_default();
        send_diagnostics(conn, uri, diags)?;
    }
    Ok(())
}

fn send_diagnostics(conn: &Connection, uri: Url, diagnostics: Vec<lsp::Diagnostic>) -> Result<(), Error> {
    let p = lsp::PublishDiagnosticsParams { uri, diagnostics, version: None };
    conn.sender.send(Message::Notification(Notification::new(n::PublishDiagnostics::METHOD.to_string(), p)))?;
    Ok(())
}

/// Applies a notification; returns the documents to publish diagnostics for.
fn handle_notification(state: &mut State, not: Notification) -> Vec<Url> {
    match not.method.as_str() {
        m if m == n::DidOpenTextDocument::METHOD => {
            if let Ok(p) = params::<lsp::DidOpenTextDocumentParams>(not.params) {
                let uri = p.text_document.uri;
                state.open(uri.clone(), p.text_document.text);
                return vec![uri];
            }
        }
        m if m == n::DidChangeTextDocument::METHOD => {
            if let Ok(p) = params::<lsp::DidChangeTextDocumentParams>(not.params) {
                let uri = p.text_document.uri;
                // Full sync: the last change holds the whole text.
                if let Some(c) = p.content_changes.into_iter().last() {
                    state.texts.insert(uri.clone(), c.text);
                    state.changed(&uri);
                }
                return vec![uri];
            }
        }
        m if m == n::DidSaveTextDocument::METHOD => {}
        m if m == n::DidCloseTextDocument::METHOD => {
            if let Ok(p) = params::<lsp::DidCloseTextDocumentParams>(not.params) {
                state.close(&p.text_document.uri);
                return vec![p.text_document.uri];
            }
        }
        _ => {}
    }
    vec![]
}

fn ok<T: serde::Serialize>(id: RequestId, v: T) -> Response {
    Response::new_ok(id, v)
}

fn handle_request(state: &mut State, req: Request) -> Response {
    let id = req.id.clone();
    match dispatch(state, req) {
        Ok(r) => r,
        Err(e) => Response::new_err(id, ErrorCode::InvalidParams as i32, e),
    }
}

fn dispatch(state: &mut State, req: Request) -> Result<Response, String> {
    let Request { id, method, params: p } = req;
    let doc = |v: &serde_json::Value| -> Result<Url, String> {
        params::<lsp::TextDocumentIdentifier>(v.get("textDocument").cloned().unwrap_or_default()).map(|d| d.uri)
    };
    Ok(match method.as_str() {
        m if m == r::HoverRequest::METHOD => {
            let hp: lsp::HoverParams = params(p)?;
            let pp = hp.text_document_position_params;
            ok(id, state.analysis(&pp.text_document.uri).and_then(|a| a.hover(pp.position)))
        }
        m if m == r::GotoDefinition::METHOD => {
            let dp: lsp::GotoDefinitionParams = params(p)?;
            let pp = dp.text_document_position_params;
            let locs = state.analysis(&pp.text_document.uri).map(|a| a.definition(pp.position)).unwrap_or_default();
            ok(id, (!locs.is_empty()).then_some(lsp::GotoDefinitionResponse::Array(locs)))
        }
        m if m == r::References::METHOD => {
            let rp: lsp::ReferenceParams = params(p)?;
            let pp = rp.text_document_position;
            let locs = state.analysis(&pp.text_document.uri).map(|a| a.references(pp.position, rp.context.include_declaration));
            ok(id, locs)
        }
        m if m == r::Completion::METHOD => {
            let cp: lsp::CompletionParams = params(p)?;
            let pp = cp.text_document_position;
            let items = state.analysis(&pp.text_document.uri).map(|a| a.completion(pp.position)).unwrap_or_default();
            ok(id, lsp::CompletionResponse::Array(items))
        }
        m if m == r::DocumentSymbolRequest::METHOD => {
            let uri = doc(&p)?;
            let syms = state.analysis(&uri).map(Analysis::symbols).unwrap_or_default();
            ok(id, lsp::DocumentSymbolResponse::Nested(syms))
        }
        m if m == r::Formatting::METHOD => {
            let uri = doc(&p)?;
            let edits = state.texts.get(&uri).and_then(|t| format(t));
            ok(id, edits)
        }
        _ => Response::new_err(id, ErrorCode::MethodNotFound as i32, format!("unsupported request `{method}`")),
    })
}
