package filestore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/lambdagent/lambdagent/internal/session"
)

// The catalog (see #18), written in the commit's transaction:
//
//	index  bucket: <tenant>/<created µs, 8 bytes BE><id> → nothing, one
//	       key per session, written at its first commit; Delete removes it
//	usage  bucket: <day> → JSON {"<tenant>/<counter>": sum}
//	turns  bucket in a session's bucket: the turn records (Commit.Record)
//	       under their sequence number
//
// An index key whose session expired is skipped by List; the sweep leaves
// it, and it costs a lookup.

var _ session.Catalog = (*Store)(nil)

var (
	bucketIndex = []byte("index")
	bucketUsage = []byte("usage")
	bucketTurns = []byte("turns")
)

// listBudget bounds the index keys one List reads while it looks for ids
// with the prefix.
const listBudget = 10000

func indexKey(storeID string, created int64) []byte {
	tenant, id := session.Unscope(storeID)
	k := append([]byte(tenant+"/"), binary.BigEndian.AppendUint64(nil, uint64(created))...)
	return append(k, id...)
}

// catalogCommit writes what commit c adds to the catalog; m is the
// session's meta before c, which it updates with the creation time.
func (s *Store) catalogCommit(tx *bolt.Tx, c session.Commit, m *meta, now int64) error {
	if m.Version == 0 && m.Created == 0 {
		m.Created = now / 1e3
		if err := tx.Bucket(bucketIndex).Put(indexKey(c.ID, m.Created), nil); err != nil {
			return err
		}
	}
	if len(c.Record) > 0 && c.Release {
		sb := tx.Bucket(bucketSessions).Bucket([]byte(c.ID))
		tb, err := sb.CreateBucketIfNotExists(bucketTurns)
		if err != nil {
			return err
		}
		seq, _ := tb.NextSequence()
		if err := tb.Put(msgKey(int64(seq)), c.Record); err != nil {
			return err
		}
	}
	if len(c.Counters) > 0 {
		ub := tx.Bucket(bucketUsage)
		day := []byte(session.DayKey(time.Unix(0, now)))
		sums := map[string]int64{}
		if b := ub.Get(day); b != nil {
			if err := json.Unmarshal(b, &sums); err != nil {
				return fmt.Errorf("decode usage of %s: %w", day, err)
			}
		}
		tenant, _ := session.Unscope(c.ID)
		for name, n := range c.Counters {
			sums[tenant+"/"+name] += n
		}
		b, err := json.Marshal(sums)
		if err != nil {
			return err
		}
		return ub.Put(day, b)
	}
	return nil
}

// unindex removes session id from the index.
func unindex(tx *bolt.Tx, id string) error {
	sb := tx.Bucket(bucketSessions).Bucket([]byte(id))
	if sb == nil {
		return nil
	}
	m, err := readMeta(sb, 0) // expired or not
	if err != nil || m == nil || m.Created == 0 {
		return err
	}
	return tx.Bucket(bucketIndex).Delete(indexKey(id, m.Created))
}

// List implements [session.Catalog.List].
func (s *Store) List(ctx context.Context, tenant string, q session.ListQuery) (*session.ListPage, error) {
	q = q.Normalize()
	if tenant == "" {
		tenant = session.DefaultTenant
	}
	pfx := []byte(tenant + "/")
	var after []byte
	if q.Cursor != "" {
		b, err := hex.DecodeString(q.Cursor)
		if err != nil || !bytes.HasPrefix(b, pfx) || len(b) < len(pfx)+8 {
			return nil, session.ErrBadCursor
		}
		after = b
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	page := &session.ListPage{}
	err := s.db.View(func(tx *bolt.Tx) error {
		sessions := tx.Bucket(bucketSessions)
		c := tx.Bucket(bucketIndex).Cursor()
		start := after
		if start == nil {
			start = []byte(tenant + "0") // '0' follows '/': past the tenant's keys
		}
		k, _ := c.Seek(start)
		if k == nil {
			k, _ = c.Last()
		} else {
			k, _ = c.Prev()
		}
		now := time.Now().UnixNano()
		for n := 0; k != nil && bytes.HasPrefix(k, pfx) && n < listBudget; k, _ = c.Prev() {
			n++
			created := int64(binary.BigEndian.Uint64(k[len(pfx):]))
			id := string(k[len(pfx)+8:])
			if !strings.HasPrefix(id, q.Prefix) {
				continue
			}
			m, err := readMeta(sessions.Bucket([]byte(session.Scope(tenant, id))), now)
			if err != nil {
				return err
			}
			if m == nil || m.Created != created {
				continue // expired, or the key of an expired session of the same id
			}
			if len(page.Sessions) == q.Limit {
				page.Next = hex.EncodeToString(indexKey(session.Scope(tenant, page.Sessions[q.Limit-1].ID), page.Sessions[q.Limit-1].Created.UnixMicro()))
				return nil
			}
			page.Sessions = append(page.Sessions, session.Summary{ID: id, Created: time.UnixMicro(created).UTC(), Turns: m.Turns, Counters: m.Counters})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list sessions of %s: %w", tenant, err)
	}
	return page, nil
}

// Records implements [session.Catalog.Records].
func (s *Store) Records(ctx context.Context, id string) ([]json.RawMessage, error) {
	if err := session.ValidStoreID(id); err != nil {
		return nil, fmt.Errorf("read turn records of session %q: %w", id, err)
	}
	var out []json.RawMessage
	err := s.db.View(func(tx *bolt.Tx) error {
		sb := tx.Bucket(bucketSessions).Bucket([]byte(id))
		if m, err := readMeta(sb, time.Now().UnixNano()); err != nil || m == nil {
			return err
		}
		tb := sb.Bucket(bucketTurns)
		if tb == nil {
			return nil
		}
		return tb.ForEach(func(_, v []byte) error {
			out = append(out, bytes.Clone(v))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read turn records of session %s: %w", id, err)
	}
	return out, nil
}

// maxUsageDays bounds the days one Usage call reads.
const maxUsageDays = 400

// Usage implements [session.Catalog.Usage].
func (s *Store) Usage(ctx context.Context, from, to time.Time) ([]session.DayUsage, error) {
	from, to = from.UTC().Truncate(24*time.Hour), to.UTC().Truncate(24*time.Hour)
	if from.Before(to.AddDate(0, 0, -maxUsageDays+1)) {
		from = to.AddDate(0, 0, -maxUsageDays+1)
	}
	var out []session.DayUsage
	err := s.db.View(func(tx *bolt.Tx) error {
		ub := tx.Bucket(bucketUsage)
		for d := from; !d.After(to); d = d.AddDate(0, 0, 1) {
			b := ub.Get([]byte(session.DayKey(d)))
			if b == nil {
				continue
			}
			var sums map[string]int64
			if err := json.Unmarshal(b, &sums); err != nil {
				return fmt.Errorf("decode usage of %s: %w", session.DayKey(d), err)
			}
			du := session.DayUsage{Day: d, Tenants: map[string]map[string]int64{}}
			for f, n := range sums {
				tenant, name, ok := strings.Cut(f, "/")
				if !ok {
					continue
				}
				if du.Tenants[tenant] == nil {
					du.Tenants[tenant] = map[string]int64{}
				}
				du.Tenants[tenant][name] = n
			}
			out = append(out, du)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read usage: %w", err)
	}
	return out, nil
}
