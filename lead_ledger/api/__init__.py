"""HTTP adapters: one module per vendor dialect, plus native, admin and ops routes."""
