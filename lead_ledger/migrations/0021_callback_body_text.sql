-- A callback's body is sent as it was built: jsonb kept an object's keys in an order of its
-- own (shortest first), so Ozonetel bulk V4's callback arrived with its keys out of the vendor's
-- order. The body is text now, byte for byte what is sent; the erasure reads it as jsonb.
ALTER TABLE callback_outbox ALTER COLUMN body TYPE text USING body::text;
