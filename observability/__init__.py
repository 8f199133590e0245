"""Operations' view of the processes: Prometheus metrics (`metrics`), OpenTelemetry traces (`tracing`) and
logs with the run's ids and no personal data (`logs`). Imported by the worker and the API; it imports neither."""
