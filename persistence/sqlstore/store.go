// Package sqlstore is Soma's one implementation of persistence.Store over
// database/sql; the postgres and sqlite backends supply a Dialect (schema and
// the few differences) and a *sql.DB.
//
// Layout: one file per table (the statements as consts beside it, a struct
// of prepared statements, methods named for what they do); the transaction
// logic that spans tables lives once, in commit.go (the write side of rooms),
// state.go (snapshots), reader.go and accounts.go.
//
// Stream positions: MaxStreamPos is computed by an in-process tracker
// (streams.go). It is exact for every commit made through this Store; a
// second process writing the same database (several clustered nodes over
// one PostgreSQL) is not seen by it until this process opens again.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/soma-chat/soma/persistence"
)

// Store implements persistence.Store.
type Store struct {
	db      *sql.DB
	dialect *Dialect
	stmts   []*sql.Stmt
	// writeSem queues writers for a SingleWriter database; nil otherwise.
	writeSem chan struct{}
	streams  *streamTracker
	types    *nidCache
	keys     *nidCache
	// schemaVersion is Ping's statement.
	schemaVersion *sql.Stmt

	accounts       *accountsTable
	devices        *devicesTable
	profiles       *profilesTable
	rooms          *roomsTable
	events         *eventsTable
	eventTypes     *eventTypesTable
	eventStateKeys *eventStateKeysTable
	stateBlocks    *stateBlocksTable
	stateSnapshots *stateSnapshotsTable
	currentState   *currentStateTable
	memberships    *membershipsTable
	txnIDs         *txnIDsTable
	rejectedEvents *rejectedEventsTable
	accountData    *accountDataTable
	receipts       *receiptsTable
	redactions     *redactionsTable
	relations      *relationsTable
	search         *searchTable
	// End-to-end encryption (keys.go).
	deviceKeys        *deviceKeysTable
	oneTimeKeys       *oneTimeKeysTable
	fallbackKeys      *fallbackKeysTable
	toDevice          *toDeviceTable
	deviceListChanges *deviceListChangesTable
	roomAliases       *roomAliasesTable
	roomVisibility    *roomVisibilityTable
	userDirectory     *userDirectoryQueries
	media             *mediaTable
	thumbnails        *mediaThumbnailsTable
	// Remote servers' signing keys (serverkeys.go).
	serverKeys         *serverKeysTable
	serverKeyResponses *serverKeyResponsesTable
	// Pushers (pushers.go).
	pushers *pushersTable
	// The outbound federation queue (federationqueue.go).
	federationQueue *federationQueueTable

	// Cross-signing (crosssigning.go) and key backup (keybackup.go).
	crossSigningKeys       *crossSigningKeysTable
	crossSigningSignatures *crossSigningSignaturesTable
	keyBackupVersions      *keyBackupVersionsTable
	keyBackupSessions      *keyBackupSessionsTable
}

var _ persistence.Store = (*Store)(nil)

// Open migrates db to the dialect's schema and returns the store over it.
// The store owns db: Close closes it.
func Open(ctx context.Context, db *sql.DB, d Dialect) (*Store, error) {
	if err := d.check(); err != nil {
		return nil, err
	}
	s := &Store{db: db, dialect: &d, types: newNIDCache(1 << 14), keys: newNIDCache(1 << 17)}
	if d.SingleWriter {
		s.writeSem = make(chan struct{}, 1)
	}
	if err := migrate(ctx, db, s.dialect); err != nil {
		return nil, err
	}
	if d.AfterMigrate != nil {
		if err := d.AfterMigrate(ctx, db); err != nil {
			return nil, fmt.Errorf("sqlstore.Open: %w", err)
		}
	}
	p := &preparer{ctx: ctx, db: db, d: s.dialect}
	s.schemaVersion = p.prepare(selectSchemaVersionSQL)
	s.accounts = prepareAccountsTable(p)
	s.devices = prepareDevicesTable(p)
	s.profiles = prepareProfilesTable(p)
	s.rooms = prepareRoomsTable(p)
	s.events = prepareEventsTable(p)
	s.eventTypes = prepareEventTypesTable(p)
	s.eventStateKeys = prepareEventStateKeysTable(p)
	s.stateBlocks = prepareStateBlocksTable(p)
	s.stateSnapshots = prepareStateSnapshotsTable(p)
	s.currentState = prepareCurrentStateTable(p)
	s.memberships = prepareMembershipsTable(p)
	s.txnIDs = prepareTxnIDsTable(p)
	s.rejectedEvents = prepareRejectedEventsTable(p)
	s.accountData = prepareAccountDataTable(p)
	s.receipts = prepareReceiptsTable(p)
	s.redactions = prepareRedactionsTable(p)
	s.relations = prepareRelationsTable(p)
	s.search = prepareSearchTable(p)
	s.deviceKeys = prepareDeviceKeysTable(p)
	s.oneTimeKeys = prepareOneTimeKeysTable(p)
	s.fallbackKeys = prepareFallbackKeysTable(p)
	s.toDevice = prepareToDeviceTable(p)
	s.deviceListChanges = prepareDeviceListChangesTable(p)
	s.crossSigningKeys = prepareCrossSigningKeysTable(p)
	s.crossSigningSignatures = prepareCrossSigningSignaturesTable(p)
	s.keyBackupVersions = prepareKeyBackupVersionsTable(p)
	s.keyBackupSessions = prepareKeyBackupSessionsTable(p)
	s.roomAliases = prepareRoomAliasesTable(p)
	s.roomVisibility = prepareRoomVisibilityTable(p)
	s.userDirectory = prepareUserDirectoryQueries(p)
	s.media = prepareMediaTable(p)
	s.thumbnails = prepareMediaThumbnailsTable(p)
	s.serverKeys = prepareServerKeysTable(p)
	s.serverKeyResponses = prepareServerKeyResponsesTable(p)
	s.pushers = preparePushersTable(p)
	s.federationQueue = prepareFederationQueueTable(p)
	s.stmts = p.stmts
	if p.err != nil {
		s.closeStmts()
		return nil, fmt.Errorf("sqlstore.Open: %w", p.err)
	}
	maxPos, err := s.events.SelectMaxStreamPos(ctx)
	if err != nil {
		s.closeStmts()
		return nil, fmt.Errorf("sqlstore.Open: %w", err)
	}
	s.streams = newStreamTracker(maxPos)
	// Warm the event type cache: there are few types and every send needs
	// one. State keys (mostly user IDs) are learnt as they are used.
	types, err := s.eventTypes.SelectEventTypes(ctx, 1<<12)
	if err != nil {
		s.closeStmts()
		return nil, fmt.Errorf("sqlstore.Open: %w", err)
	}
	s.types.learn(types)
	return s, nil
}

// DB is the underlying database, for tests and tools.
func (s *Store) DB() *sql.DB { return s.db }

// Close closes the prepared statements and the database.
func (s *Store) Close() error {
	s.closeStmts()
	return s.db.Close()
}

func (s *Store) closeStmts() {
	for _, st := range s.stmts {
		_ = st.Close()
	}
	s.stmts = nil
}

// MaxStreamPos implements persistence.Store.
func (s *Store) MaxStreamPos(ctx context.Context) (persistence.StreamPos, error) {
	return s.streams.max(), nil
}

// Ping implements persistence.Store: it reads the schema version, which
// needs a working connection, and checks it is the one Open migrated to.
func (s *Store) Ping(ctx context.Context) error {
	var v int
	if err := s.schemaVersion.QueryRowContext(ctx).Scan(&v); err != nil {
		return fmt.Errorf("sqlstore.Ping: %w", err)
	}
	if want := len(s.dialect.Migrations); v != want {
		return fmt.Errorf("sqlstore.Ping: the database has schema version %d, this build migrated it to %d", v, want)
	}
	return nil
}

// preparer prepares the statements of the tables, remembering the first
// error so that each table's constructor reads as a list.
type preparer struct {
	ctx   context.Context
	db    *sql.DB
	d     *Dialect
	err   error
	stmts []*sql.Stmt
}

func (p *preparer) prepare(query string) *sql.Stmt {
	if p.err != nil {
		return nil
	}
	q, err := p.d.rewrite(query)
	if err != nil {
		p.err = err
		return nil
	}
	st, err := p.db.PrepareContext(p.ctx, q)
	if err != nil {
		p.err = fmt.Errorf("prepare %q: %w", q, err)
		return nil
	}
	p.stmts = append(p.stmts, st)
	return st
}

// txStmt returns st to run inside tx, or st itself outside a transaction.
func txStmt(ctx context.Context, tx *sql.Tx, st *sql.Stmt) *sql.Stmt {
	if tx == nil {
		return st
	}
	return tx.StmtContext(ctx, st)
}

// lockWrites waits for the turn to write on a SingleWriter database.
func (s *Store) lockWrites(ctx context.Context) (unlock func(), err error) {
	if s.writeSem == nil {
		return func() {}, nil
	}
	select {
	case s.writeSem <- struct{}{}:
		return func() { <-s.writeSem }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// writeTx runs fn in a write transaction, committed when fn returns nil and
// rolled back otherwise.
func (s *Store) writeTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = tx.Rollback()
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	committed = true
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// write runs one writing statement outside a transaction, returning how
// many rows it changed.
func (s *Store) write(ctx context.Context, st *sql.Stmt, args ...any) (int64, error) {
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return 0, err
	}
	defer unlock()
	res, err := st.ExecContext(ctx, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// notFoundIfNoRows maps sql.ErrNoRows to persistence.ErrNotFound.
func notFoundIfNoRows(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return persistence.ErrNotFound
	}
	return err
}
