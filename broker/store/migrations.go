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
	// 4: gateways and virtual devices. Routes are JSON lists of prefixes on the device:
	// what it advertises now, and what an administrator or the policy approved (kept when
	// no longer advertised, so advertising again restores it).
	//
	// Virtual devices get their own table rather than rows in devices: they have no key,
	// endpoints, user or revocation, and devices.public_key is NOT NULL UNIQUE, which
	// SQLite cannot relax without rebuilding the table; every query on devices (auth by
	// key, endpoints, revocation on removal) would need to exclude them. Names and
	// addresses are shared by both tables within an account: the store checks both in the
	// same write transaction, and the triggers refuse any write that would break it.
	// Removing the gateway removes its virtual devices (ON DELETE CASCADE).
	`
ALTER TABLE devices ADD COLUMN advertised_routes TEXT NOT NULL DEFAULT '[]';
ALTER TABLE devices ADD COLUMN approved_routes TEXT NOT NULL DEFAULT '[]';
CREATE TABLE vdevs (
	id         TEXT PRIMARY KEY,
	account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
	gateway_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
	name       TEXT NOT NULL,
	address    TEXT NOT NULL,
	lan_ip     TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	UNIQUE (account_id, name),
	UNIQUE (account_id, address),
	UNIQUE (gateway_id, lan_ip)
);
CREATE TRIGGER vdevs_insert_unique BEFORE INSERT ON vdevs
WHEN EXISTS (SELECT 1 FROM devices WHERE id = NEW.id
	OR (account_id = NEW.account_id AND (name = NEW.name OR address = NEW.address)))
BEGIN SELECT RAISE(ABORT, 'a device holds this virtual device''s id, name or address'); END;
CREATE TRIGGER vdevs_update_unique BEFORE UPDATE OF name, address ON vdevs
WHEN EXISTS (SELECT 1 FROM devices WHERE account_id = NEW.account_id AND (name = NEW.name OR address = NEW.address))
BEGIN SELECT RAISE(ABORT, 'a device holds this virtual device''s name or address'); END;
CREATE TRIGGER devices_insert_unique BEFORE INSERT ON devices
WHEN EXISTS (SELECT 1 FROM vdevs WHERE id = NEW.id
	OR (account_id = NEW.account_id AND (name = NEW.name OR address = NEW.address)))
BEGIN SELECT RAISE(ABORT, 'a virtual device holds this device''s id, name or address'); END;
CREATE TRIGGER devices_update_unique BEFORE UPDATE OF name, address ON devices
WHEN EXISTS (SELECT 1 FROM vdevs WHERE account_id = NEW.account_id AND (name = NEW.name OR address = NEW.address))
BEGIN SELECT RAISE(ABORT, 'a virtual device holds this device''s name or address'); END;
`,
	// 5: account sessions for people (the tray's account login), and the administrator
	// role that lets a user remove the account's devices with one. Tokens are stored as
	// their SHA-256 only; ended sessions stay a while so their holder hears why.
	`
ALTER TABLE users ADD COLUMN admin INTEGER NOT NULL DEFAULT 0;
CREATE TABLE sessions (
	token_sha256 BLOB PRIMARY KEY,
	user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	created_at   INTEGER NOT NULL,
	expires_at   INTEGER NOT NULL,
	last_used    INTEGER NOT NULL DEFAULT 0,
	revoked_at   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX sessions_user ON sessions (user_id);
`,
	// 6: session IDs, so an administrator can name a session to revoke it (the token is
	// never shown again and its hash is no name to hand around), and who ended a session
	// ('' its holder logged out, 'admin' an administrator revoked it). Sessions issued
	// before get a random ID here.
	`
ALTER TABLE sessions ADD COLUMN id TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN revoked_by TEXT NOT NULL DEFAULT '';
UPDATE sessions SET id = lower(hex(randomblob(8)));
CREATE UNIQUE INDEX sessions_id ON sessions (id);
`,
}
