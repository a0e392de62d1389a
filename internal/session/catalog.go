package session

import (
	"context"
	"encoding/json"
	"time"

	"github.com/lambdagent/lambdagent/internal/apierr"
)

// A Catalog answers the read queries of the console and of any client
// that browses (see #18): a tenant's sessions, the records of a
// session's turns, and the usage per day. It is an optional ability of a
// [Store], checked with a type assertion.
//
// None of it costs a turn a round trip: a store writes the index, the
// turn record and the day's sums in the same round trip as the commit
// that causes them (the Redis store pipelines them with it, since on
// Redis Cluster they live on other slots than the session's keys).
type Catalog interface {
	// List returns the sessions of tenant (empty is the default tenant),
	// newest first by creation. A session enters the index at its first
	// commit and leaves it when deleted; one that expired is skipped.
	List(ctx context.Context, tenant string, q ListQuery) (*ListPage, error)
	// Records returns the records of the session's turns
	// ([Commit.Record]), oldest first: nil when there are none.
	Records(ctx context.Context, id string) ([]json.RawMessage, error)
	// Usage returns the sums of every tenant's committed counters per UTC
	// day, for the days from and to (inclusive) that have any, oldest
	// first.
	Usage(ctx context.Context, from, to time.Time) ([]DayUsage, error)
}

// DefaultListLimit and MaxListLimit bound [ListQuery.Limit].
const (
	DefaultListLimit = 20
	MaxListLimit     = 100
)

// ListQuery asks [Catalog.List] for one page.
type ListQuery struct {
	// Limit is the page's size. Zero means DefaultListLimit; it is capped
	// at MaxListLimit.
	Limit int
	// Cursor is ListPage.Next of the previous page; empty for the first.
	Cursor string
	// Prefix, if set, keeps only the sessions whose id starts with it.
	Prefix string
}

// Normalize applies Limit's default and cap.
func (q ListQuery) Normalize() ListQuery {
	if q.Limit <= 0 {
		q.Limit = DefaultListLimit
	}
	q.Limit = min(q.Limit, MaxListLimit)
	return q
}

// ListPage is one page of [Catalog.List].
type ListPage struct {
	Sessions []Summary
	// Next is the cursor of the next page; empty on the last one.
	Next string
}

// Summary describes one session of a [ListPage].
type Summary struct {
	// ID is the client's session id (not scoped by tenant).
	ID       string
	Created  time.Time
	Turns    int64
	Counters map[string]int64
}

// DayUsage is the counters of one UTC day, by tenant.
type DayUsage struct {
	// Day is midnight UTC of the day.
	Day time.Time
	// Tenants maps a tenant (DefaultTenant for the default one) to its
	// sums of [Commit.Counters].
	Tenants map[string]map[string]int64
}

// DayKey is the name of t's UTC day, as stores key their daily sums.
func DayKey(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// ErrBadCursor means a ListQuery.Cursor is not one a store handed out.
var ErrBadCursor = apierr.Sentinel("session: bad list cursor", apierr.Error{
	Kind: apierr.InvalidRequest, Message: "cursor is not one a previous page returned"})
