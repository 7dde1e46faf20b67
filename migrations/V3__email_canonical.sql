-- Email uniqueness and sign-in by a canonical form computed in Rust (`shared::auth::email`:
-- NFKC with full Unicode case folding). `lower(email)` under the C locale folds ASCII only, so
-- look-alikes (`ＡＮＮ@example.com` beside `ANN@example.com`, `Straße` beside `STRASSE`)
-- registered as separate accounts. `email` keeps the address as shown; `email_canonical` is
-- the key.
--
-- Existing rows. SQL can produce the exact canonical form only for ASCII addresses, where
-- NFKC changes nothing and full case folding is A-Z -> a-z; `translate` spells that out
-- instead of `lower()`, whose result depends on the database's locale (Turkish folds `I` to
-- `ı`). PostgreSQL 15 has no full case folding (`casefold()` arrived in 18; `lower()` is not
-- folding even under ICU: `ß` stays `ß`), so a non-ASCII address cannot be canonicalised
-- here without guessing, and a wrong guess would lock its owner out. Those rows keep
-- `email_canonical` NULL: sign-in still finds them by the old comparison
-- (`lower(email) = lower(typed)`, exactly what worked before), and the first sign-in stores the
-- Rust form (`repo::users::set_canonical`). NULLs do not collide in a unique index, and the old
-- `users_email_lower_key` index is kept, so those rows stay unique as they always were; for
-- rows written from now on it adds no refusal (addresses equal under ASCII folding are equal
-- canonically too).
--
-- Before this migration the application rejected no format characters, so a legacy address
-- may hold, say, a zero-width space. Its canonical form is not computed (it would never pass
-- registration now); it stays NULL and its owner signs in with the exact address as before.

ALTER TABLE users ADD COLUMN email_canonical text;

UPDATE users
SET email_canonical = translate(email, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')
WHERE octet_length(email) = char_length(email); -- one byte per character in UTF-8: ASCII

CREATE UNIQUE INDEX users_email_canonical_key ON users (email_canonical);
