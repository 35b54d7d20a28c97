//! Classes of Kafka errors: worth retrying, needing a fresh producer, or refused for good.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// True when retrying the same operation later may succeed (broker down, queue full,
/// timeouts); false for errors that will repeat (bad config, record too large, auth).
pub fn is_transient(error: &KafkaError) -> bool {
    let code = match error {
        KafkaError::MessageProduction(code)
        | KafkaError::MessageConsumption(code)
        | KafkaError::MetadataFetch(code)
        | KafkaError::AdminOp(code) => *code,
        KafkaError::Canceled => return true,
        _ => return false,
    };
    matches!(
        code,
        RDKafkaErrorCode::QueueFull
            | RDKafkaErrorCode::MessageTimedOut
            | RDKafkaErrorCode::RequestTimedOut
            | RDKafkaErrorCode::OperationTimedOut
            | RDKafkaErrorCode::AllBrokersDown
            | RDKafkaErrorCode::BrokerTransportFailure
            | RDKafkaErrorCode::NetworkException
            | RDKafkaErrorCode::LeaderNotAvailable
            | RDKafkaErrorCode::NotLeaderForPartition
            | RDKafkaErrorCode::NotEnoughReplicas
            | RDKafkaErrorCode::NotEnoughReplicasAfterAppend
            | RDKafkaErrorCode::CoordinatorNotAvailable
            | RDKafkaErrorCode::NotCoordinator
    )
}

/// Errors after which a producer must be replaced: the idempotent producer hit a fatal error (the
/// broker refused its idempotence state), and every later send would fail the same way. A lost
/// broker is not one: the producer reconnects by itself.
pub fn needs_fresh_producer(error: &KafkaError) -> bool {
    matches!(
        error,
        KafkaError::MessageProduction(
            RDKafkaErrorCode::Fatal
                | RDKafkaErrorCode::OutOfOrderSequenceNumber
                | RDKafkaErrorCode::UnknownProducerId
                | RDKafkaErrorCode::InvalidProducerEpoch
                | RDKafkaErrorCode::InvalidProducerIdMapping
        )
    )
}

/// True when the broker (or the client) will refuse this record however often it is sent: it
/// is too large or malformed. Anything else, unknown errors included, may pass on a retry.
pub fn is_refused_for_good(error: &KafkaError) -> bool {
    matches!(
        error,
        KafkaError::MessageProduction(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::MessageBatchTooLarge
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::InvalidRecord
                | RDKafkaErrorCode::BadMessage
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_errors_are_told_from_permanent_ones() {
        let cases = [
            (KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), true),
            (KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut), true),
            (KafkaError::MessageProduction(RDKafkaErrorCode::AllBrokersDown), true),
            (KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge), false),
            (KafkaError::MessageProduction(RDKafkaErrorCode::TopicAuthorizationFailed), false),
            (KafkaError::ClientCreation("bad".into()), false),
        ];
        for (error, transient) in cases {
            assert_eq!(is_transient(&error), transient, "{error}");
        }
        assert!(is_refused_for_good(&KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge)));
        assert!(
            !is_refused_for_good(&KafkaError::MessageProduction(RDKafkaErrorCode::Unknown)),
            "retried, not dropped"
        );
    }
}
