//! The client against a tiny local HTTP server: one canned answer per connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::thread;

use serde_json::{json, Value};

use super::*;

/// A request as the server received it.
#[derive(Debug)]
struct Received {
    /// `POST /output/output`
    line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        let found = self
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name));
        found.map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON request body")
    }
}

/// Serves `answers` (status, body), one per connection, on 127.0.0.1; returns the
/// client and the requests it receives.
fn serve(answers: Vec<(u16, &'static str)>) -> (Client, mpsc::Receiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for (status, body) in answers {
            let (stream, _) = listener.accept().expect("accept");
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            reader.read_line(&mut head).unwrap();
            let line = head.trim_end().trim_end_matches(" HTTP/1.1").to_owned();
            let mut headers = Vec::new();
            loop {
                let mut header = String::new();
                reader.read_line(&mut header).unwrap();
                let header = header.trim_end();
                if header.is_empty() {
                    break;
                }
                let (k, v) = header.split_once(':').expect("a header line");
                headers.push((k.trim().to_owned(), v.trim().to_owned()));
            }
            let length = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .map_or(0, |(_, v)| v.parse::<usize>().unwrap());
            let mut request_body = vec![0; length];
            reader.read_exact(&mut request_body).unwrap();
            let _ = tx.send(Received {
                line,
                headers,
                body: request_body,
            });
            let mut stream = stream;
            let answer = if status == 204 {
                "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n".to_owned()
            } else {
                format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            };
            stream.write_all(answer.as_bytes()).unwrap();
        }
    });
    (Client::new(url), rx)
}

#[test]
fn append_201_sends_the_records_as_data() {
    let (api, requests) = serve(vec![(201, r#"{"message": "Written successfully."}"#)]);
    let records = [json!({"id": "1", "title": "Shoe"}), json!({"id": "2"})];
    api.append(OutputKind::Output, &records).unwrap();

    let request = requests.recv().unwrap();
    assert_eq!(request.line, "POST /output/output");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.json(),
        json!({"data": [{"id": "1", "title": "Shoe"}, {"id": "2"}]})
    );
}

#[test]
fn append_with_separator_sends_meta() {
    let (api, requests) = serve(vec![(201, r#"{"message": "Written successfully."}"#)]);
    let mut record = Record::new();
    record.insert("id".into(), "7".into());
    api.append_with_separator(OutputKind::Feedback, &[record], Some("_"))
        .unwrap();

    let request = requests.recv().unwrap();
    assert_eq!(request.line, "POST /output/feedback");
    assert_eq!(
        request.json(),
        json!({"data": [{"id": "7"}], "meta": {"separator": "_"}})
    );
}

#[test]
fn append_of_nothing_sends_nothing() {
    let (api, requests) = serve(vec![]);
    api.append::<Record>(OutputKind::Output, &[]).unwrap();
    assert!(requests.recv().is_err(), "no request expected");
}

#[test]
fn append_400_carries_the_errors_map() {
    let (api, _requests) = serve(vec![(
        400,
        r#"{"message": "Validation failed", "errors": {"data": "This value should be an array of items."}}"#,
    )]);
    let err = api
        .append(OutputKind::Output, &[json!({"id": "1"})])
        .unwrap_err();

    assert_eq!(err.endpoint(), Endpoint::Append);
    assert_eq!(err.call(), "POST /output/output");
    assert_eq!(err.status(), Some(400));
    assert_eq!(err.api_message(), Some("Validation failed"));
    assert_eq!(
        err.errors().get("data").map(String::as_str),
        Some("This value should be an array of items.")
    );
    assert_eq!(
        err.to_string(),
        "POST /output/output: 400 Validation failed \
         (data: This value should be an array of items.)"
    );
    assert_eq!(
        err.to_context(),
        json!({"call": "POST /output/output", "status": 400,
               "errors": {"data": "This value should be an array of items."}})
    );
}

#[test]
fn next_batch_exhausted_is_empty() {
    let (api, requests) = serve(vec![(200, r#"{"message": "", "data": []}"#)]);
    let batch = api.next_batch(InputKind::Input, 1000, true).unwrap();
    assert!(batch.is_empty());
    let request = requests.recv().unwrap();
    assert_eq!(
        request.line,
        "GET /input/input/next_batch?size=1000&show-hidden=true"
    );
}

#[test]
fn next_batch_returns_the_records() {
    let (api, requests) = serve(vec![(
        200,
        r#"{"message": "", "data": [{"id": "1", "title": "Shoe"}, {"id": "2"}]}"#,
    )]);
    let batch = api.next_batch(InputKind::Modified, 2, false).unwrap();
    assert_eq!(batch.len(), 2);
    assert_eq!(batch[0]["title"], "Shoe");
    assert_eq!(
        requests.recv().unwrap().line,
        "GET /input/modified/next_batch?size=2"
    );
}

#[test]
fn next_is_none_on_204_and_a_record_on_200() {
    let (api, requests) = serve(vec![
        (200, r#"{"message": "", "data": {"id": "1"}}"#),
        (204, ""),
    ]);
    let options = ReadOptions {
        show_hidden: false,
        classification_id: Some("12".into()),
    };
    let first = api.next(InputKind::New, &options).unwrap().unwrap();
    assert_eq!(first["id"], "1");
    assert!(api.next(InputKind::New, &options).unwrap().is_none());
    assert_eq!(
        requests.recv().unwrap().line,
        "GET /input/new/next?classification-id=12"
    );
}

#[test]
fn count_restart_close_ping_and_log() {
    let (api, requests) = serve(vec![
        (
            200,
            r#"{"message": "Items counted successfully.", "data": {"count": 42}}"#,
        ),
        (200, r#"{"message": "successful request"}"#),
        (204, ""),
        (200, r#"{"message": "pong"}"#),
        (201, r#"{"message": "Written successfully."}"#),
    ]);
    assert_eq!(api.count(InputKind::Deleted).unwrap(), 42);
    api.restart(InputKind::Input).unwrap();
    api.close(OutputKind::Feedback).unwrap();
    api.ping().unwrap();
    api.log(Level::Notice, "read 3", Some(json!({"read": 3})))
        .unwrap();

    let lines: Vec<Received> = requests.iter().take(5).collect();
    assert_eq!(lines[0].line, "GET /items/deleted/count");
    assert_eq!(lines[1].line, "GET /input/input/restart");
    assert_eq!(lines[2].line, "POST /output/feedback/close");
    assert_eq!(lines[3].line, "GET /ping");
    assert_eq!(lines[4].line, "POST /logs/notice");
    assert_eq!(
        lines[4].json(),
        json!({"message": "read 3", "context": {"read": 3}})
    );
}

#[test]
fn a_404_and_a_non_json_500_are_errors_with_their_message() {
    let (api, _requests) = serve(vec![
        (404, r#"{"message": "Requested file not provided."}"#),
        (500, "boom"),
    ]);
    let err = api.next_batch(InputKind::New, 10, false).unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert_eq!(
        err.to_string(),
        "GET /input/new/next_batch: 404 Requested file not provided."
    );
    assert!(err.errors().is_empty());
    let err = api.count(InputKind::Input).unwrap_err();
    assert_eq!(err.to_string(), "GET /items/input/count: 500 boom");
}

#[test]
fn an_answer_without_data_is_invalid() {
    let (api, _requests) = serve(vec![(200, r#"{"message": ""}"#)]);
    let err = api.next_batch(InputKind::Input, 1, false).unwrap_err();
    assert!(matches!(
        err.kind(),
        ErrorKind::InvalidAnswer { status: 200, .. }
    ));
    assert!(err.to_string().contains("no `data`"), "{err}");
}

#[test]
fn no_server_is_a_transport_error_naming_the_call() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let api = Client::new(format!("http://127.0.0.1:{port}/"));
    assert_eq!(api.base_url(), format!("http://127.0.0.1:{port}"));
    let err = api.log(Level::Error, "x", None).unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Transport(_)));
    assert_eq!(err.status(), None);
    let text = err.to_string();
    assert!(
        text.starts_with("POST /logs/error: no answer from the Container API at http://127.0.0.1:"),
        "{text}"
    );
}

#[test]
fn enums_parse_their_values() {
    for level in Level::ALL {
        assert_eq!(level.as_str().parse::<Level>().unwrap(), *level);
    }
    assert_eq!("feedback".parse::<OutputKind>(), Ok(OutputKind::Feedback));
    assert!("full".parse::<InputKind>().is_err());
}
