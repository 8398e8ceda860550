"""Controllers as pure functions: high-level kinds compiled into the Istio resources they
stand for. No I/O here; the server writes what these return (see ``server.asmegress``)."""
