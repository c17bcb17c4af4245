package store

// migrations are applied in order, each once; never edit one that has shipped, append.
// Times are Unix milliseconds, 0 for unset. Public keys are base64 as wg(8) prints them.
var migrations = []string{
	// 1: accounts, users, auth keys, devices, revoked device keys.
	`
CREATE TABLE accounts (
	id         INTEGER PRIMARY KEY,
	name       TEXT NOT NULL UNIQUE,
	created_at INTEGER NOT NULL
);
CREATE TABLE users (
	id            INTEGER PRIMARY KEY,
	account_id    INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
	email         TEXT NOT NULL,
	password_hash TEXT NOT NULL,
	created_at    INTEGER NOT NULL,
	UNIQUE (account_id, email)
);
CREATE TABLE auth_keys (
	id            TEXT PRIMARY KEY,
	account_id    INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
	secret_sha256 BLOB NOT NULL,
	reusable      INTEGER NOT NULL,
	expires_at    INTEGER NOT NULL,
	used_at       INTEGER NOT NULL DEFAULT 0,
	created_at    INTEGER NOT NULL
);
CREATE TABLE devices (
	id          TEXT PRIMARY KEY,
	account_id  INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
	name        TEXT NOT NULL,
	public_key  TEXT NOT NULL UNIQUE,
	address     TEXT NOT NULL,
	endpoints   TEXT NOT NULL DEFAULT '[]',
	listen_port INTEGER NOT NULL DEFAULT 0,
	created_at  INTEGER NOT NULL,
	last_seen   INTEGER NOT NULL DEFAULT 0,
	UNIQUE (account_id, name),
	UNIQUE (account_id, address)
);
-- Keys that belonged to a device that was removed or re-registered under a new key,
-- kept so their holder is told why it can no longer authenticate.
CREATE TABLE revoked_keys (
	public_key TEXT PRIMARY KEY,
	account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
	reason     TEXT NOT NULL,
	revoked_at INTEGER NOT NULL
);
`,
	// 2: access policies, and which user registered each device (for user: selectors).
	`
CREATE TABLE policies (
	account_id INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
	filename   TEXT NOT NULL,
	source     BLOB NOT NULL,
	updated_at INTEGER NOT NULL
);
ALTER TABLE devices ADD COLUMN user_email TEXT NOT NULL DEFAULT '';
`,
	// 3: NAT traversal: relays (global, or an account's own), and what each device last
	// reported of its public mappings and NAT.
	`
CREATE TABLE relays (
	id         INTEGER PRIMARY KEY,
	account_id INTEGER REFERENCES accounts(id) ON DELETE CASCADE, -- NULL for a global relay
	name       TEXT NOT NULL,
	udp        TEXT NOT NULL DEFAULT '',
	tls        TEXT NOT NULL DEFAULT '',
	public_key TEXT NOT NULL,
	created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX relays_account_name ON relays (coalesce(account_id, 0), name);
ALTER TABLE devices ADD COLUMN reflexive TEXT NOT NULL DEFAULT '[]';
ALTER TABLE devices ADD COLUMN nat TEXT NOT NULL DEFAULT '';
`,
}
