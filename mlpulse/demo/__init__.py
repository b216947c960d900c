"""The demo: the whole loop on the embedded store, with incidents injected one after another."""
