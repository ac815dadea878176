package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"strings"
)

// Dialect is what a backend tells the shared store about its database: the
// schema, and the few places where PostgreSQL and SQLite differ. The
// statements in this package are written once, in PostgreSQL's syntax with
// two macros, and rewritten for the dialect in one place (Dialect.rewrite):
//
//   - {next_stream_pos}, {next_outlier_pos} and {next_state_block_nid}
//     become the dialect's expressions for the next stream position, the
//     next (negative) position of an outlier and the next state block NID;
//   - IN_NIDS(column, $n) becomes the dialect's test of column against a
//     list of NIDs passed as the one text parameter $n (see NIDList);
//   - SERVER_OF(column) becomes the dialect's expression for the server
//     name of the user ID in column (what follows its first colon);
//   - {skip_locked} ends a SELECT of rows to claim: FOR UPDATE SKIP LOCKED,
//     or nothing on a SingleWriter database, where no claim races;
//   - $n becomes ?n when NumberedQuestionMarks is set.
type Dialect struct {
	// Name is the backend's name, used in errors.
	Name string
	// Migrations is the schema, oldest first, numbered from 1 without gaps.
	// A released migration is never edited: a change is a new migration.
	Migrations []Migration
	// MigrationLock, when set, is run first in the migration transaction to
	// keep concurrent starts from migrating at once.
	MigrationLock string
	// NextStreamPos is an SQL expression giving the next stream position.
	// It is evaluated in the INSERT of each event. Positions must be unique
	// and increase with every evaluation that commits (concurrent
	// transactions may commit out of order: the store tracks that).
	NextStreamPos string
	// NextOutlierPos is an SQL expression giving an outlier event its
	// position: unique, below zero, where no stream read looks.
	NextOutlierPos string
	// NextStateBlockNID is an SQL expression giving a fresh state block NID.
	NextStateBlockNID string
	// InNIDs is a format with the column as %[1]s and the parameter as
	// %[2]s, true when the column is one of the NIDs in the parameter.
	InNIDs string
	// NIDList is a format with %s for comma-separated NIDs: how a list of
	// NIDs is written as a column value (block lists) or an InNIDs
	// parameter, e.g. "{%s}" for a PostgreSQL array, "[%s]" for JSON.
	NIDList string
	// ServerOf is a format with the column as %[1]s giving the server name
	// of the user ID in it: what follows the first colon.
	ServerOf string
	// NumberedQuestionMarks rewrites $n placeholders as ?n, for drivers
	// that bind $n by order of appearance rather than by number.
	NumberedQuestionMarks bool
	// LimitParamAsExpression writes LIMIT $n as LIMIT $n + 0. SQLite's
	// planner reads a bare LIMIT parameter, which marks the statement to
	// be compiled again whenever its bindings are cleared — on every use
	// of a prepared statement: measured 35 µs instead of 7 µs a query. An
	// expression keeps the one compilation.
	LimitParamAsExpression bool
	// SingleWriter says the database admits one writing transaction at a
	// time: the store then queues its writers in process instead of letting
	// them poll the database's busy handler.
	SingleWriter bool
	// FullText is how the event search index matches words (see
	// search_table.go).
	FullText FullText
	// AfterMigrate, when set, runs once the migrations are applied and
	// before the statements are prepared: set-up that depends on the
	// driver rather than the schema (SQLite's FTS5 index).
	AfterMigrate func(ctx context.Context, db *sql.DB) error
}

// FullText is a way of matching the words of a search against the event
// search index.
type FullText int

const (
	// FullTextTSVector: PostgreSQL's tsvector column with a GIN index,
	// websearch_to_tsquery and ts_rank, English stemming.
	FullTextTSVector FullText = iota + 1
	// FullTextFTS5: SQLite's FTS5 over event_search's text (the
	// event_search_fts table, which the backend creates and keeps), bm25.
	FullTextFTS5
	// FullTextScan: a scan of event_search's lowercased text for every
	// word, ranked by occurrences, for SQLite drivers built without FTS5.
	FullTextScan
)

// Migration is one numbered step of a backend's schema.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

var (
	inNIDsMacro      = regexp.MustCompile(`IN_NIDS\(([^,()]+),\s*(\$\d+)\)`)
	serverOfMacro    = regexp.MustCompile(`SERVER_OF\(([^,()]+)\)`)
	dollarParam      = regexp.MustCompile(`\$(\d+)`)
	limitParam       = regexp.MustCompile(`\bLIMIT (\$\d+)\b`)
	leftoverMacroRef = regexp.MustCompile(`\{next_[a-z_]+\}|IN_NIDS\(|SERVER_OF\(`)
)

// rewrite turns a statement of this package into the dialect's SQL.
func (d *Dialect) rewrite(query string) (string, error) {
	skipLocked := "FOR UPDATE SKIP LOCKED"
	if d.SingleWriter {
		skipLocked = ""
	}
	q := strings.NewReplacer(
		"{next_stream_pos}", d.NextStreamPos,
		"{next_outlier_pos}", d.NextOutlierPos,
		"{next_state_block_nid}", d.NextStateBlockNID,
		"{skip_locked}", skipLocked,
	).Replace(query)
	q = inNIDsMacro.ReplaceAllStringFunc(q, func(m string) string {
		sub := inNIDsMacro.FindStringSubmatch(m)
		return fmt.Sprintf(d.InNIDs, strings.TrimSpace(sub[1]), sub[2])
	})
	q = serverOfMacro.ReplaceAllStringFunc(q, func(m string) string {
		return fmt.Sprintf(d.ServerOf, strings.TrimSpace(serverOfMacro.FindStringSubmatch(m)[1]))
	})
	if leftoverMacroRef.MatchString(q) {
		return "", fmt.Errorf("sqlstore: %s dialect: unexpanded macro in %q", d.Name, query)
	}
	if d.LimitParamAsExpression {
		q = limitParam.ReplaceAllString(q, "LIMIT $1 + 0")
	}
	if d.NumberedQuestionMarks {
		q = dollarParam.ReplaceAllString(q, "?$1")
	}
	return q, nil
}

func (d *Dialect) check() error {
	if d.NextStreamPos == "" || d.NextOutlierPos == "" || d.NextStateBlockNID == "" || d.InNIDs == "" || d.NIDList == "" || d.ServerOf == "" || d.FullText == 0 {
		return fmt.Errorf("sqlstore: %s dialect is incomplete", d.Name)
	}
	for i, m := range d.Migrations {
		if m.Version != i+1 {
			return fmt.Errorf("sqlstore: %s migration %q has version %d, want %d", d.Name, m.Name, m.Version, i+1)
		}
	}
	return nil
}
