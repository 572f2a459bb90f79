-- Login attempts counted in PostgreSQL, so the throttle holds across every server process. One
-- row per (subject, window): a subject is a dialect's username or a client address, kept as a
-- digest so that a username of any length fits the index.
CREATE TABLE login_throttle (
    subject       text NOT NULL,
    window_start  timestamptz NOT NULL,
    attempts      integer NOT NULL,
    PRIMARY KEY (subject, window_start)
);
