//! Conversions between `rkron_core::Execution` and its protobuf message.

use chrono::{DateTime, Utc};
use rkron_core::Execution;
use rkron_core::execution::unix_nanos;

use crate::proto;

/// Returns the protobuf message of `execution`.
pub(crate) fn execution_to_proto(execution: &Execution) -> proto::Execution {
    proto::Execution {
        job_name: execution.job_name.clone(),
        started_at: unix_nanos(execution.started_at),
        finished_at: execution.finished_at.map(unix_nanos),
        success: execution.success,
        output: execution.output.clone(),
        node_name: execution.node_name.clone(),
        group: execution.group,
        attempt: execution.attempt,
        scheduled_at: execution.scheduled_at.map(unix_nanos),
    }
}

/// Returns the execution carried by `message`.
pub(crate) fn execution_from_proto(message: proto::Execution) -> Execution {
    Execution {
        job_name: message.job_name,
        started_at: instant(message.started_at),
        finished_at: message.finished_at.map(instant),
        success: message.success,
        output: message.output,
        node_name: message.node_name,
        group: message.group,
        attempt: message.attempt,
        scheduled_at: message.scheduled_at.map(instant),
    }
}

fn instant(unix_nanos: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(unix_nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_execution_survives_the_round_trip() {
        let started = instant(1_700_000_000_123_456_789);
        let running = Execution {
            job_name: "j".into(),
            started_at: started,
            finished_at: None,
            success: false,
            output: String::new(),
            node_name: "n1".into(),
            group: 42,
            attempt: 2,
            scheduled_at: None,
        };
        assert_eq!(execution_from_proto(execution_to_proto(&running)), running);
        let finished = Execution {
            finished_at: Some(instant(1_700_000_001_000_000_000)),
            success: true,
            output: "hi\n".into(),
            scheduled_at: Some(instant(1_699_999_999_000_000_000)),
            ..running
        };
        assert_eq!(
            execution_from_proto(execution_to_proto(&finished)),
            finished
        );
    }
}
