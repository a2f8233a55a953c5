"""Usage metering: raw usage events in, compute units per account and UTC day out."""
