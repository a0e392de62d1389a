package archtest

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// lambdaTags are the build tags of the Lambda bootstrap, as in
// scripts/lambda/build.sh (cmd/lambdagent/lambda_test.go checks the
// script uses them).
const lambdaTags = "lambda,lambda.norpc,grpcnotrace"

// A rule says which packages must not depend on which. Patterns are
// import paths; one ending in "/..." also matches everything below it.
type rule struct {
	name   string   // what the rule keeps true; it heads each violation
	from   []string // the packages the rule constrains
	except []string // packages of from the rule leaves out
	deny   []string // what they must not depend on
	// direct counts only the packages' own imports; otherwise everything
	// they link counts, and a violation shows the chain of imports.
	direct bool
	// tests checks the imports of the packages' _test.go files instead of
	// those of the packages themselves (direct imports only).
	tests bool
	// tags are the build tags of the build the rule is about.
	tags string
}

// rules is the architecture. Add a row when a new boundary appears in the
// code; the cases of TestCheck show what each kind of row catches.
var rules = []rule{
	{
		name: "the stores know nothing of turns, transports or the model",
		from: []string{mod + "internal/session/..."},
		deny: []string{
			mod + "internal/agent/...",
			mod + "internal/httpapi/...",
			mod + "internal/lambdafn/...",
			"github.com/aws/aws-lambda-go/...",
			mod + "internal/claude",
		},
	},
	{
		name: "the turn knows no transport and no Redis",
		from: []string{mod + "internal/agent/..."},
		deny: []string{
			mod + "internal/httpapi/...",
			mod + "internal/lambdafn/...",
			"github.com/aws/aws-lambda-go/...",
			"github.com/redis/go-redis/...",
			mod + "internal/session/redisstore",
			mod + "internal/session/filestore",
		},
	},
	{
		name: "workflow definitions and the engine know no transport and no storage backend",
		from: []string{mod + "internal/workflow", mod + "internal/workflow/engine"},
		deny: []string{
			mod + "internal/httpapi/...",
			mod + "internal/lambdafn/...",
			"github.com/redis/go-redis/...",
			"go.etcd.io/bbolt/...",
			mod + "internal/workflow/redisrun",
			mod + "internal/workflow/filerun",
		},
	},
	{
		// Direct only: the turn links net/http through internal/claude,
		// whose Reply and Usage it uses. Once the turn no longer imports
		// internal/claude (#12 item 4, the model's request value), move
		// net/http into the rule above.
		name:   "the turn's own code does no HTTP",
		from:   []string{mod + "internal/agent/..."},
		deny:   []string{"net/http/..."},
		direct: true,
	},
	{
		name: "the simulator shares no code with the client",
		from: []string{mod + "internal/claudesim/..."},
		deny: []string{mod + "internal/claude", "github.com/anthropics/anthropic-sdk-go/..."},
	},
	{
		name:   "only the client uses the Anthropic SDK",
		from:   []string{mod + "..."},
		except: []string{mod + "internal/claude"},
		deny:   []string{"github.com/anthropics/anthropic-sdk-go/..."},
		direct: true,
	},
	{
		// The simulator's tests drive it with the real SDK: that is how
		// they show it speaks the Messages API as the client will.
		name:   "tests use the Anthropic SDK only to check the simulator",
		from:   []string{mod + "..."},
		except: []string{mod + "internal/claude", mod + "internal/claudesim"},
		deny:   []string{"github.com/anthropics/anthropic-sdk-go/..."},
		direct: true,
		tests:  true,
	},
	{
		// Less to load and initialise on every cold start; the modes are
		// stubbed out in cmd/lambdagent/modes_lambda.go.
		name: "the Lambda bootstrap links no developer-only mode",
		from: []string{mod + "cmd/lambdagent"},
		deny: []string{
			mod + "internal/claudesim/...",
			mod + "internal/loadgen/...",
			mod + "internal/chatui/...",
			mod + "internal/console/...",
		},
		tags: lambdaTags,
	},
}

// A graph maps an import path to what the package imports.
type graph map[string]imports

type imports struct {
	pkg  []string // by its non-test files
	test []string // by its _test.go files, in either package
}

// loadGraph is the import graph of the module's packages and everything
// they link, in the build with tags.
func loadGraph(t *testing.T, tags string) graph {
	args := []string{"-deps"}
	if tags != "" {
		args = append(args, "-tags", tags)
	}
	g := graph{}
	for _, p := range goList(t, args...) {
		g[p.ImportPath] = imports{pkg: p.Imports, test: slices.Concat(p.TestImports, p.XTestImports)}
	}
	return g
}

// TestDeps checks the rules on the module as it is.
func TestDeps(t *testing.T) {
	graphs := map[string]graph{}
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			g, ok := graphs[r.tags]
			if !ok {
				g = loadGraph(t, r.tags)
				graphs[r.tags] = g
			}
			for _, v := range check(g, r) {
				t.Error(v)
			}
		})
	}
}

// check returns one line per package of g that breaks r, naming the
// package, what it must not import and the chain of imports that brings
// it in. A rule whose from matches no package is reported too: it would
// pass whatever the code does (a package renamed, a pattern mistyped).
func check(g graph, r rule) []string {
	var out []string
	matched := false
	for _, p := range slices.Sorted(maps.Keys(g)) {
		if !matchAny(r.from, p) || matchAny(r.except, p) {
			continue
		}
		matched = true
		for _, chain := range r.find(g, p) {
			out = append(out, fmt.Sprintf("%s: %s", r.name, chain))
		}
	}
	if !matched {
		out = append(out, fmt.Sprintf("%s: no package matches %s, so the rule checks nothing", r.name, strings.Join(r.from, " ")))
	}
	return out
}

// find walks the imports of p breadth first and returns, for each denied
// package it reaches, the shortest chain of imports that reaches it, as
// "p → q → denied". It does not walk on through a denied package.
func (r rule) find(g graph, p string) []string {
	first, label := g[p].pkg, short(p)
	if r.tests {
		first, label = g[p].test, short(p)+" (tests)"
	}
	parent := map[string]string{}
	var queue, found []string
	for _, q := range first {
		if _, seen := parent[q]; !seen && q != p {
			parent[q] = ""
			queue = append(queue, q)
		}
	}
	for len(queue) > 0 {
		q := queue[0]
		queue = queue[1:]
		if matchAny(r.deny, q) {
			found = append(found, q)
			continue
		}
		if r.direct || r.tests { // the graph has no test-only packages to walk
			continue
		}
		for _, next := range g[q].pkg {
			if _, seen := parent[next]; !seen && next != p {
				parent[next] = q
				queue = append(queue, next)
			}
		}
	}
	var out []string
	for _, q := range found {
		chain := []string{short(q)}
		for at := parent[q]; at != ""; at = parent[at] {
			chain = append(chain, short(at))
		}
		chain = append(chain, label)
		slices.Reverse(chain)
		out = append(out, strings.Join(chain, " → "))
	}
	return out
}

func matchAny(patterns []string, path string) bool {
	for _, pat := range patterns {
		if base, ok := strings.CutSuffix(pat, "/..."); ok {
			if path == base || strings.HasPrefix(path, base+"/") {
				return true
			}
		} else if path == pat {
			return true
		}
	}
	return false
}

// TestCheck shows each rule catching a deliberate violation in a made-up
// import graph, and passing one that keeps it.
func TestCheck(t *testing.T) {
	const (
		session   = mod + "internal/session"
		sessionX  = mod + "internal/session/x"
		agent     = mod + "internal/agent"
		claude    = mod + "internal/claude"
		claudesim = mod + "internal/claudesim"
		helper    = mod + "internal/helper"
		cmd       = mod + "cmd/lambdagent"
		sdk       = "github.com/anthropics/anthropic-sdk-go"
	)
	// clean keeps every rule: the layers as they are meant to be.
	clean := graph{
		session:   {},
		agent:     {pkg: []string{claude, session}, test: []string{claudesim, "net/http/httptest"}},
		claude:    {pkg: []string{sdk, "net/http"}, test: []string{sdk}},
		claudesim: {pkg: []string{"net/http"}, test: []string{sdk, claude}},
		sdk:       {pkg: []string{sdk + "/option", "net/http"}},
		cmd:       {pkg: []string{agent, claude, session}},
	}
	with := func(edits graph) graph {
		g := graph{}
		for k, v := range clean {
			g[k] = v
		}
		for k, v := range edits {
			g[k] = v
		}
		return g
	}
	tests := []struct {
		name string
		rule string // the name's start is enough
		g    graph
		want []string
	}{
		{"clean: stores", "the stores", clean, nil},
		{"clean: turn", "the turn knows", clean, nil},
		{"clean: turn's HTTP through the client is allowed", "the turn's own", clean, nil},
		{"clean: simulator", "the simulator", clean, nil},
		{"clean: SDK", "only the client", clean, nil},
		{"clean: SDK in tests", "tests use", clean, nil},
		{"clean: Lambda", "the Lambda", clean, nil},
		{
			name: "a store imports the turn",
			rule: "the stores",
			g:    with(graph{sessionX: {pkg: []string{session, agent}}}),
			want: []string{"the stores know nothing of turns, transports or the model: internal/session/x → internal/agent"},
		},
		{
			name: "a store links the client through another package",
			rule: "the stores",
			g:    with(graph{session: {pkg: []string{helper}}, helper: {pkg: []string{claude}}}),
			want: []string{"the stores know nothing of turns, transports or the model: internal/session → internal/helper → internal/claude"},
		},
		{
			name: "the turn links Redis, reported once with the shortest chain",
			rule: "the turn knows",
			g: with(graph{
				agent:                          {pkg: []string{claude, helper, session}},
				helper:                         {pkg: []string{"github.com/redis/go-redis/v9"}},
				"github.com/redis/go-redis/v9": {pkg: []string{"github.com/redis/go-redis/v9/internal"}},
			}),
			want: []string{"the turn knows no transport and no Redis: internal/agent → internal/helper → github.com/redis/go-redis/v9"},
		},
		{
			name: "the turn imports net/http itself",
			rule: "the turn's own",
			g:    with(graph{agent: {pkg: []string{claude, "net/http", session}}}),
			want: []string{"the turn's own code does no HTTP: internal/agent → net/http"},
		},
		{
			name: "the simulator imports the client",
			rule: "the simulator",
			g:    with(graph{claudesim: {pkg: []string{claude, "net/http"}}}),
			want: []string{"the simulator shares no code with the client: internal/claudesim → internal/claude"},
		},
		{
			name: "a package other than the client imports the SDK",
			rule: "only the client",
			g:    with(graph{helper: {pkg: []string{sdk + "/option"}}}),
			want: []string{"only the client uses the Anthropic SDK: internal/helper → github.com/anthropics/anthropic-sdk-go/option"},
		},
		{
			name: "another package's tests import the SDK",
			rule: "tests use",
			g:    with(graph{agent: {pkg: []string{claude, session}, test: []string{sdk}}}),
			want: []string{"tests use the Anthropic SDK only to check the simulator: internal/agent (tests) → github.com/anthropics/anthropic-sdk-go"},
		},
		{
			name: "the Lambda bootstrap links the chat UI",
			rule: "the Lambda",
			g:    with(graph{cmd: {pkg: []string{agent, helper}}, helper: {pkg: []string{mod + "internal/chatui"}}}),
			want: []string{"the Lambda bootstrap links no developer-only mode: cmd/lambdagent → internal/helper → internal/chatui"},
		},
		{
			name: "a rule about no package",
			rule: "the Lambda",
			g:    graph{agent: {}},
			want: []string{"the Lambda bootstrap links no developer-only mode: no package matches " + mod + "cmd/lambdagent, so the rule checks nothing"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			i := slices.IndexFunc(rules, func(r rule) bool { return strings.HasPrefix(r.name, tt.rule) })
			if i < 0 {
				t.Fatalf("no rule named %q…", tt.rule)
			}
			if diff := cmp.Diff(tt.want, check(tt.g, rules[i])); diff != "" {
				t.Errorf("check (-want +got):\n%s", diff)
			}
		})
	}
}
