BEGIN TRANSACTION;
CREATE TABLE approvals (
	id INTEGER NOT NULL,
	transfer_id VARCHAR NOT NULL,
	witness VARCHAR NOT NULL,
	fingerprint VARCHAR NOT NULL,
	sha256 VARCHAR NOT NULL,
	signature VARCHAR NOT NULL,
	created_ns BIGINT NOT NULL,
	PRIMARY KEY (id),
	UNIQUE (transfer_id, witness)
);
INSERT INTO "approvals" VALUES(1,'t-0000000000a1','suzuki','SHA256:x','abababababababababababababababababababababababababababababababab','sig',2);
CREATE TABLE holding_certificates (
	id INTEGER NOT NULL,
	holding VARCHAR NOT NULL,
	kind VARCHAR NOT NULL,
	handler VARCHAR NOT NULL,
	method VARCHAR NOT NULL,
	signed_on VARCHAR NOT NULL,
	statement VARCHAR NOT NULL,
	signature VARCHAR NOT NULL,
	fingerprint VARCHAR NOT NULL,
	created_ns BIGINT NOT NULL,
	PRIMARY KEY (id),
	UNIQUE (holding, kind)
);
CREATE TABLE holding_copies (
	id INTEGER NOT NULL,
	holding VARCHAR NOT NULL,
	handler VARCHAR NOT NULL,
	path VARCHAR NOT NULL,
	request_sha256 VARCHAR NOT NULL,
	created_ns BIGINT NOT NULL,
	removed_ns BIGINT,
	PRIMARY KEY (id),
	UNIQUE (request_sha256)
);
CREATE TABLE holding_keys (
	holding VARCHAR NOT NULL,
	"key" BLOB NOT NULL,
	created_ns BIGINT NOT NULL,
	PRIMARY KEY (holding)
);
INSERT INTO "holding_keys" VALUES('h-0000000000b1',X'0101010101010101010101010101010101010101010101010101010101010101',3);
CREATE TABLE holdings (
	id VARCHAR NOT NULL,
	state VARCHAR NOT NULL,
	agreement VARCHAR,
	flow VARCHAR,
	provider VARCHAR,
	recipient VARCHAR,
	transfer VARCHAR,
	delivered_name VARCHAR NOT NULL,
	file_name VARCHAR,
	profile VARCHAR,
	size BIGINT,
	sha256 VARCHAR,
	sealed_size BIGINT,
	sealed_sha256 VARCHAR,
	manifest_sha256 VARCHAR,
	sender VARCHAR,
	witnesses VARCHAR NOT NULL,
	handlers VARCHAR NOT NULL,
	received_on VARCHAR,
	deadline VARCHAR,
	replies_to VARCHAR,
	corrects VARCHAR,
	superseded_by VARCHAR,
	applied_ns BIGINT,
	reasons VARCHAR NOT NULL,
	reminded VARCHAR NOT NULL,
	overdue_ns BIGINT,
	openings INTEGER NOT NULL,
	erased_ns BIGINT,
	inbox VARCHAR NOT NULL,
	created_ns BIGINT NOT NULL,
	updated_ns BIGINT NOT NULL,
	PRIMARY KEY (id)
);
INSERT INTO "holdings" VALUES('h-0000000000b1','received','isa-nhi-status-loss','monthly','isa','nhi-central','t-0000000000c1','t.csv.zip',NULL,NULL,10,'cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd',NULL,NULL,NULL,NULL,'[]','[]',NULL,NULL,NULL,NULL,NULL,NULL,'[]','[]',NULL,0,NULL,'{}',3,3);
CREATE TABLE onward_fingerprints (
	fp BLOB NOT NULL,
	source INTEGER NOT NULL,
	PRIMARY KEY (fp, source)
)
 WITHOUT ROWID

;
INSERT INTO "onward_fingerprints" VALUES(X'02020202020202020202020202020202',1);
CREATE TABLE onward_key_check (
	id INTEGER NOT NULL,
	check_value VARCHAR NOT NULL,
	created_ns BIGINT NOT NULL,
	PRIMARY KEY (id)
);
INSERT INTO "onward_key_check" VALUES(1,'kcv',3);
CREATE TABLE onward_sources (
	id INTEGER NOT NULL,
	holding VARCHAR NOT NULL,
	agreement VARCHAR NOT NULL,
	flow VARCHAR NOT NULL,
	holder VARCHAR NOT NULL,
	rows INTEGER NOT NULL,
	skipped INTEGER NOT NULL,
	created_ns BIGINT NOT NULL,
	PRIMARY KEY (id),
	UNIQUE (holding)
);
INSERT INTO "onward_sources" VALUES(1,'h-0000000000b1','isa-nhi-status-loss','monthly','nhi-central',1,0,3);
CREATE TABLE pending_events (
	id INTEGER NOT NULL,
	"key" VARCHAR NOT NULL,
	kind VARCHAR NOT NULL,
	time_ns BIGINT NOT NULL,
	subject VARCHAR,
	agreement VARCHAR,
	actor VARCHAR,
	data VARCHAR NOT NULL,
	PRIMARY KEY (id),
	UNIQUE ("key")
);
CREATE TABLE terms_acceptances (
	id INTEGER NOT NULL,
	agreement VARCHAR NOT NULL,
	handler VARCHAR NOT NULL,
	terms_sha256 VARCHAR NOT NULL,
	statement VARCHAR NOT NULL,
	signature VARCHAR NOT NULL,
	fingerprint VARCHAR NOT NULL,
	created_ns BIGINT NOT NULL,
	PRIMARY KEY (id),
	UNIQUE (agreement, handler, terms_sha256)
);
CREATE TABLE transfer_links (
	transfer VARCHAR NOT NULL,
	relation VARCHAR NOT NULL,
	ref VARCHAR NOT NULL,
	remote VARCHAR NOT NULL,
	ref_flow VARCHAR NOT NULL,
	operator VARCHAR NOT NULL,
	created_ns BIGINT NOT NULL,
	PRIMARY KEY (transfer)
);
INSERT INTO "transfer_links" VALUES('t-0000000000a1','replies_to','h-0000000000b1','t-0000000000c1','monthly','sato',4);
CREATE TABLE transfers (
	id VARCHAR NOT NULL,
	agreement VARCHAR NOT NULL,
	flow VARCHAR NOT NULL,
	recipient VARCHAR NOT NULL,
	state VARCHAR NOT NULL,
	provider VARCHAR NOT NULL,
	file_name VARCHAR NOT NULL,
	source_path VARCHAR NOT NULL,
	owner VARCHAR,
	sender VARCHAR,
	size BIGINT,
	sha256 VARCHAR,
	encoding VARCHAR,
	rows INTEGER,
	reasons VARCHAR NOT NULL,
	sealed_sha256 VARCHAR,
	sealed_size BIGINT,
	delivered_path VARCHAR,
	password_path VARCHAR,
	attempts INTEGER NOT NULL,
	created_ns BIGINT NOT NULL,
	updated_ns BIGINT NOT NULL,
	PRIMARY KEY (id)
);
INSERT INTO "transfers" VALUES('t-0000000000a1','isa-nhi-status-loss','monthly','nhi-central','delivered','isa','status.csv','/x/status.csv',NULL,'sato',10,'abababababababababababababababababababababababababababababababab',NULL,NULL,'[]',NULL,NULL,NULL,NULL,1,1,2);
CREATE INDEX ix_transfers_agreement ON transfers (agreement);
CREATE INDEX ix_transfers_state ON transfers (state);
CREATE INDEX ix_approvals_transfer_id ON approvals (transfer_id);
CREATE INDEX ix_holdings_transfer ON holdings (transfer);
CREATE INDEX ix_holdings_agreement ON holdings (agreement);
CREATE INDEX ix_holdings_state ON holdings (state);
CREATE INDEX ix_terms_acceptances_agreement ON terms_acceptances (agreement);
CREATE INDEX ix_holding_certificates_holding ON holding_certificates (holding);
CREATE INDEX ix_holding_copies_holding ON holding_copies (holding);
CREATE INDEX ix_onward_sources_agreement ON onward_sources (agreement);
COMMIT;
