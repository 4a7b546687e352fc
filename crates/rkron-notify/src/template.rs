//! Dkron's notification template data (`.Report`, `.JobName`, …) and Go `text/template` rendering.

use std::collections::HashMap;

use chrono::{DateTime, Timelike, Utc};
use gtmpl::{Context, Template, Value};
use rkron_core::Execution;

/// Go's zero `time.Time`, as `time.String()` prints it: the finish time of a running execution.
const GO_ZERO_TIME: &str = "0001-01-01 00:00:00 +0000 UTC";

/// Everything a payload template can read, in Dkron's field names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TemplateData {
    pub(crate) report: String,
    pub(crate) job_name: String,
    pub(crate) reporting_node: String,
    pub(crate) start_time: String,
    pub(crate) finished_at: String,
    pub(crate) success: String,
    pub(crate) node_name: String,
    pub(crate) output: String,
}

impl TemplateData {
    /// Builds the data of `execution`, reported by `reporting_node`, with `group` for `.Report`.
    pub(crate) fn new(reporting_node: &str, execution: &Execution, group: &[Execution]) -> Self {
        Self {
            report: report(reporting_node, execution, group),
            job_name: execution.job_name.clone(),
            reporting_node: reporting_node.to_owned(),
            start_time: go_time_string(execution.started_at),
            finished_at: go_finished_at(execution.finished_at),
            success: execution.success.to_string(),
            node_name: execution.node_name.clone(),
            output: execution.output.clone(),
        }
    }

    fn into_value(self) -> Value {
        let fields = [
            ("Report", self.report),
            ("JobName", self.job_name),
            ("ReportingNode", self.reporting_node),
            ("StartTime", self.start_time),
            ("FinishedAt", self.finished_at),
            ("Success", self.success),
            ("NodeName", self.node_name),
            ("Output", self.output),
        ];
        let object: HashMap<String, Value> = fields
            .into_iter()
            .map(|(name, value)| (name.to_owned(), Value::String(value)))
            .collect();
        Value::Object(object)
    }
}

/// The outcome of rendering a payload: the body to send, and whether the template was broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rendered {
    /// The template rendered.
    Ok(String),
    /// The template failed; the body is Dkron's error text, which is still sent.
    Broken(String),
}

impl Rendered {
    /// Returns the body to send, whether or not the template rendered.
    pub(crate) fn into_body(self) -> String {
        match self {
            Self::Ok(body) | Self::Broken(body) => body,
        }
    }
}

/// Renders the Go template `template` over `data`.
///
/// As in Dkron, a template that does not parse or execute gives a body naming the error
/// (`Failed to parse template: …`, `Failed to execute template:…`) instead of an error.
pub(crate) fn render(template: &str, data: &TemplateData) -> Rendered {
    let mut parsed = Template::default();
    if let Err(error) = parsed.parse(template) {
        return Rendered::Broken(format!("Failed to parse template: {error}"));
    }
    match parsed.render(&Context::from(data.clone().into_value())) {
        Ok(body) => Rendered::Ok(body),
        // Dkron writes no space after this colon.
        Err(error) => Rendered::Broken(format!("Failed to execute template:{error}")),
    }
}

/// Dkron's `.Report` text: the execution, then one line per execution of its group.
pub(crate) fn report(reporting_node: &str, execution: &Execution, group: &[Execution]) -> String {
    let mut text = format!(
        "Executed: {}\nReporting node: {}\nStart time: {}\nEnd time: {}\nSuccess: {}\nNode: {}\n\
         Output: {}\nExecution group: {}\n",
        execution.job_name,
        reporting_node,
        go_time_string(execution.started_at),
        go_finished_at(execution.finished_at),
        execution.success,
        execution.node_name,
        execution.output,
        execution.group,
    );
    for member in group {
        text.push_str(&format!(
            "\t[Node]: {} [Start]: {} [End]: {} [Success]: {}\n",
            member.node_name,
            go_time_string(member.started_at),
            go_finished_at(member.finished_at),
            member.success,
        ));
    }
    text
}

fn go_finished_at(finished_at: Option<DateTime<Utc>>) -> String {
    finished_at.map_or_else(|| GO_ZERO_TIME.to_owned(), go_time_string)
}

/// Formats `t` as Go's `time.Time.String()` does for a UTC time:
/// `2006-01-02 15:04:05.999999999 +0000 UTC`, with trailing zeros of the fraction dropped.
pub(crate) fn go_time_string(t: DateTime<Utc>) -> String {
    let seconds = t.format("%Y-%m-%d %H:%M:%S");
    // A leap second is carried in chrono's nanoseconds above 1e9; Go has no leap seconds.
    let nanos = t.nanosecond() % 1_000_000_000;
    if nanos == 0 {
        return format!("{seconds} +0000 UTC");
    }
    let fraction = format!("{nanos:09}");
    format!("{seconds}.{} +0000 UTC", fraction.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(secs: i64, nanos: u32) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, nanos).unwrap()
    }

    fn execution(node: &str, success: bool, finished: Option<DateTime<Utc>>) -> Execution {
        Execution {
            job_name: "job1".into(),
            started_at: at(1_734_599_350, 0),
            finished_at: finished,
            success,
            output: "hello\n".into(),
            node_name: node.into(),
            group: 1_734_599_350_000_000_000,
            attempt: 1,
            scheduled_at: None,
        }
    }

    #[test]
    fn go_time_string_trims_the_fraction() {
        assert_eq!(
            go_time_string(at(1_734_599_350, 0)),
            "2024-12-19 09:09:10 +0000 UTC"
        );
        assert_eq!(
            go_time_string(at(1_734_599_350, 1_500_000)),
            "2024-12-19 09:09:10.0015 +0000 UTC"
        );
        assert_eq!(
            go_time_string(at(1_734_599_350, 123_456_789)),
            "2024-12-19 09:09:10.123456789 +0000 UTC"
        );
        assert_eq!(go_finished_at(None), "0001-01-01 00:00:00 +0000 UTC");
    }

    #[test]
    fn report_lists_the_execution_and_its_group() {
        let done = execution("node-a", true, Some(at(1_734_599_351, 250_000_000)));
        let other = execution("node-b", false, Some(at(1_734_599_352, 0)));
        let text = report("server-1", &done, &[done.clone(), other]);
        assert_eq!(
            text,
            "Executed: job1\n\
             Reporting node: server-1\n\
             Start time: 2024-12-19 09:09:10 +0000 UTC\n\
             End time: 2024-12-19 09:09:11.25 +0000 UTC\n\
             Success: true\n\
             Node: node-a\n\
             Output: hello\n\n\
             Execution group: 1734599350000000000\n\
             \t[Node]: node-a [Start]: 2024-12-19 09:09:10 +0000 UTC [End]: 2024-12-19 09:09:11.25 +0000 UTC [Success]: true\n\
             \t[Node]: node-b [Start]: 2024-12-19 09:09:10 +0000 UTC [End]: 2024-12-19 09:09:12 +0000 UTC [Success]: false\n"
        );
    }

    #[test]
    fn every_variable_renders() {
        let done = execution("node-a", false, Some(at(1_734_599_351, 0)));
        let data = TemplateData::new("server-1", &done, std::slice::from_ref(&done));
        let template = "{{.JobName}}|{{.ReportingNode}}|{{.StartTime}}|{{.FinishedAt}}|\
                        {{.Success}}|{{.NodeName}}|{{.Output}}";
        assert_eq!(
            render(template, &data),
            Rendered::Ok(
                "job1|server-1|2024-12-19 09:09:10 +0000 UTC|2024-12-19 09:09:11 +0000 UTC|\
                 false|node-a|hello\n"
                    .into()
            )
        );
        assert_eq!(
            render("{{.Report}}", &data),
            Rendered::Ok(report("server-1", &done, std::slice::from_ref(&done)))
        );
        assert_eq!(
            render(r#"{{if eq .Success "true"}}ok{{else}}failed{{end}}"#, &data),
            Rendered::Ok("failed".into())
        );
    }

    #[test]
    fn running_execution_finishes_at_go_zero_time() {
        let running = execution("node-a", false, None);
        let data = TemplateData::new("server-1", &running, &[]);
        assert_eq!(
            render("{{.FinishedAt}}", &data),
            Rendered::Ok("0001-01-01 00:00:00 +0000 UTC".into())
        );
    }

    #[test]
    fn broken_templates_render_dkron_error_text() {
        let done = execution("node-a", true, Some(at(1_734_599_351, 0)));
        let data = TemplateData::new("server-1", &done, &[]);
        let Rendered::Broken(parse) = render("{{.JobName", &data) else {
            panic!("an unclosed action must not parse");
        };
        assert!(parse.starts_with("Failed to parse template: "), "{parse}");
        let Rendered::Broken(exec) = render("{{template \"nope\"}}", &data) else {
            panic!("a missing template must not execute");
        };
        assert!(exec.starts_with("Failed to execute template:"), "{exec}");
    }
}
