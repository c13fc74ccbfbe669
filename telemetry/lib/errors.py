class ServiceUnavailable(RuntimeError):
    """A server-side fault that a retry may outlive: answered 503 with Retry-After, never 500."""
