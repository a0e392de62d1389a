package session

import (
	"errors"
	"strings"
	"testing"
)

func TestValidID(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"s1", true},
		{"user@example.com:chat-1_a.b", true},
		{strings.Repeat("a", MaxIDLen), true},
		{"", false},
		{strings.Repeat("a", MaxIDLen+1), false},
		{"a b", false},
		{"a{b}", false},
		{"a/b", false},
		{"é", false},
		{"a\x00", false},
	}
	for _, tc := range tests {
		err := ValidID(tc.id)
		if (err == nil) != tc.ok {
			t.Errorf("ValidID(%q) = %v, want ok=%v", tc.id, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidID) {
			t.Errorf("ValidID(%q) = %v, not ErrInvalidID", tc.id, err)
		}
	}
}

func FuzzValidID(f *testing.F) {
	for _, s := range []string{"s1", "", "a{b}", "user@x:1", strings.Repeat("z", 200), "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if err := ValidID(id); err != nil {
			if !errors.Is(err, ErrInvalidID) {
				t.Fatalf("ValidID(%q) = %v, not ErrInvalidID", id, err)
			}
			return
		}
		// An accepted id is safe inside a Redis hash tag and a URL path.
		if len(id) == 0 || len(id) > MaxIDLen || strings.ContainsAny(id, "{}/ ?#%") {
			t.Fatalf("ValidID accepted %q", id)
		}
	})
}
