-- A credential a login issued names its user (CredentialIssued.username): each later login of
-- that user answers the same token, found here, until it is revoked. Credentials issued
-- before this migration name none, as their events do, so a rebuild gives the same rows.
ALTER TABLE credentials ADD COLUMN username text;
CREATE INDEX credentials_login_idx ON credentials (account_id, username)
    WHERE username IS NOT NULL AND NOT revoked;
