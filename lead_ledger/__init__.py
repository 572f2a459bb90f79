"""lead-ledger: an event-sourced ledger of outbound-dialer leads."""

__version__ = "0.1.0"
