//! Stream processors over `signals.raw`: dedupe, source detection, mapping rules and identity
//! resolution, committing offsets only after their outputs are acknowledged.
