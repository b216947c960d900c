"""Alert rules, the alert state machine, routing and notifications."""
