package lambdafn

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v4"
)

// The SAM template and the build script live outside this package, but
// they deploy it: these tests keep them valid CloudFormation and in step
// with what lambdafn and cmd/lambdagent expect.
const (
	templatePath = "../../deploy/template.yaml"
	buildScript  = "../../scripts/lambda/build.sh"
)

// pseudoParams are CloudFormation's own Ref targets.
var pseudoParams = []string{"AWS::AccountId", "AWS::NoValue", "AWS::NotificationARNs", "AWS::Partition",
	"AWS::Region", "AWS::StackId", "AWS::StackName", "AWS::URLSuffix"}

// samGenerated are the resources the SAM transform adds for a function
// (suffixes) or for the implicit HTTP API, which may be referenced.
var (
	samFunctionSuffixes = []string{"Role", "Url", "Alias", "Version"}
	samGlobal           = []string{"ServerlessHttpApi", "ServerlessRestApi"}
)

// template is a parsed template with its top-level sections.
type template struct {
	root                           *yaml.Node
	params, conds, res, outputs    map[string]*yaml.Node
	refs, getAtts, subVars, ifUses []string
	condUses                       []string
	problems                       []string // malformed intrinsic functions
}

func loadTemplate(t *testing.T) *template {
	t.Helper()
	data, err := os.ReadFile(templatePath)
	if err != nil {
		t.Fatal(err)
	}
	tp, err := parseTemplate(data)
	if err != nil {
		t.Fatalf("%s: %v", templatePath, err)
	}
	return tp
}

func parseTemplate(data []byte) (*template, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("want one mapping document")
	}
	tp := &template{root: doc.Content[0]}
	section := func(name string) map[string]*yaml.Node {
		m := map[string]*yaml.Node{}
		if n := get(tp.root, name); n != nil {
			for i := 0; i+1 < len(n.Content); i += 2 {
				m[n.Content[i].Value] = n.Content[i+1]
			}
		}
		return m
	}
	tp.params, tp.conds, tp.res, tp.outputs = section("Parameters"), section("Conditions"), section("Resources"), section("Outputs")
	tp.walk(tp.root)
	return tp, nil
}

// get returns the value under key in a mapping node, or nil.
func get(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// path follows keys down from n.
func path(n *yaml.Node, keys ...string) *yaml.Node {
	for _, k := range keys {
		n = get(n, k)
	}
	return n
}

// scalarAt is the scalar value down keys from n, or "".
func scalarAt(n *yaml.Node, keys ...string) string {
	if n = path(n, keys...); n != nil {
		return n.Value
	}
	return ""
}

var subVar = regexp.MustCompile(`\$\{([^!}][^}]*)\}`)

// walk collects every intrinsic function's targets, in both the short
// (!Ref) and the long (Ref:) form.
func (tp *template) walk(n *yaml.Node) {
	switch n.Tag {
	case "!Ref":
		tp.refs = append(tp.refs, n.Value)
	case "!GetAtt":
		tp.getAtt(n)
	case "!Sub":
		tp.sub(n)
	case "!If":
		if len(n.Content) == 3 {
			tp.ifUses = append(tp.ifUses, n.Content[0].Value)
		} else {
			tp.problems = append(tp.problems, fmt.Sprintf("line %d: !If wants [condition, then, else]", n.Line))
		}
	case "!Condition":
		tp.condUses = append(tp.condUses, n.Value)
	}
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i].Value, n.Content[i+1]
			switch k {
			case "Ref":
				tp.refs = append(tp.refs, v.Value)
			case "Fn::GetAtt":
				tp.getAtt(v)
			case "Fn::Sub":
				tp.sub(v)
			case "Fn::If":
				if len(v.Content) > 0 {
					tp.ifUses = append(tp.ifUses, v.Content[0].Value)
				}
			case "Condition":
				if v.Kind == yaml.ScalarNode {
					tp.condUses = append(tp.condUses, v.Value)
				}
			}
		}
	}
	for _, c := range n.Content {
		tp.walk(c)
	}
}

func (tp *template) getAtt(n *yaml.Node) {
	switch {
	case n.Kind == yaml.ScalarNode && strings.Contains(n.Value, "."):
		res, _, _ := strings.Cut(n.Value, ".")
		tp.getAtts = append(tp.getAtts, res)
	case n.Kind == yaml.SequenceNode && len(n.Content) == 2:
		tp.getAtts = append(tp.getAtts, n.Content[0].Value)
	default:
		tp.problems = append(tp.problems, fmt.Sprintf("line %d: GetAtt wants Resource.Attribute", n.Line))
	}
}

func (tp *template) sub(n *yaml.Node) {
	s, vars := n, map[string]bool{}
	if n.Kind == yaml.SequenceNode && len(n.Content) == 2 {
		s = n.Content[0]
		for i := 0; i+1 < len(n.Content[1].Content); i += 2 {
			vars[n.Content[1].Content[i].Value] = true
		}
	}
	for _, m := range subVar.FindAllStringSubmatch(s.Value, -1) {
		if !vars[m[1]] {
			tp.subVars = append(tp.subVars, m[1])
		}
	}
}

// resource reports whether name is a resource of the template or one the
// SAM transform generates.
func (tp *template) resource(name string) bool {
	if _, ok := tp.res[name]; ok || slices.Contains(samGlobal, name) {
		return true
	}
	for fn, n := range tp.res {
		if scalarAt(n, "Type") != "AWS::Serverless::Function" {
			continue
		}
		for _, suffix := range samFunctionSuffixes {
			if name == fn+suffix {
				return true
			}
		}
	}
	return false
}

// referenceProblems lists every Ref, GetAtt, Sub variable and Condition
// that names nothing, and every parameter and condition never used.
func referenceProblems(tp *template) []string {
	out := slices.Clone(tp.problems)
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	if v := get(tp.root, "Transform"); v == nil || v.Value != "AWS::Serverless-2016-10-31" {
		add("Transform is not AWS::Serverless-2016-10-31")
	}
	for _, k := range []string{"Parameters", "Conditions", "Resources", "Outputs"} {
		if get(tp.root, k) == nil {
			add("no %s section", k)
		}
	}
	known := func(name string) bool {
		_, param := tp.params[name]
		return param || tp.resource(name) || slices.Contains(pseudoParams, name)
	}
	for _, r := range tp.refs {
		if !known(r) {
			add("Ref %s: no such parameter or resource", r)
		}
	}
	for _, r := range tp.getAtts {
		if !tp.resource(r) {
			add("GetAtt %s: no such resource", r)
		}
	}
	for _, v := range tp.subVars {
		name, _, attr := strings.Cut(v, ".")
		if !known(name) || (attr && !tp.resource(name)) {
			add("Sub ${%s}: no such parameter or resource", v)
		}
	}
	for _, c := range append(slices.Clone(tp.ifUses), tp.condUses...) {
		if _, ok := tp.conds[c]; !ok {
			add("condition %s is used but not defined", c)
		}
	}
	used := append(slices.Clone(tp.refs), tp.subVars...)
	for p := range tp.params {
		if !slices.Contains(used, p) {
			add("parameter %s is never used", p)
		}
	}
	for c := range tp.conds {
		if !slices.Contains(tp.ifUses, c) && !slices.Contains(tp.condUses, c) {
			add("condition %s is never used", c)
		}
	}
	for name, r := range tp.res {
		if typ := path(r, "Type"); typ == nil || !strings.HasPrefix(typ.Value, "AWS::") {
			add("resource %s has no AWS:: Type", name)
		}
	}
	for name, o := range tp.outputs {
		if get(o, "Value") == nil {
			add("output %s has no Value", name)
		}
	}
	slices.Sort(out)
	return out
}

// TestTemplateReferences: the template's references all resolve; and the
// check does catch broken ones.
func TestTemplateReferences(t *testing.T) {
	if got := referenceProblems(loadTemplate(t)); len(got) != 0 {
		t.Errorf("%s:\n%s", templatePath, strings.Join(got, "\n"))
	}

	broken := `
Transform: AWS::Serverless-2016-10-31
Parameters:
  Used: {Type: String}
  Unused: {Type: String}
Conditions:
  Defined: !Equals [!Ref Used, "x"]
  Idle: !Equals ["a", "b"]
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Condition: Missing
    Properties:
      Role: !GetAtt FnRole.Arn
      Timeout: !If [Defined, 3, !Ref AWS::NoValue]
      Description: !Sub "${Used} ${AWS::Region} ${Nope} ${Queue.Arn} ${!Literal}"
      Events:
        Q: {Type: SQS, Properties: {Queue: !GetAtt Queue.Arn}}
  Bad:
    Properties: {}
Outputs:
  A: {Value: !Ref Ghost}
  B: {Value: {"Fn::GetAtt": [Fn, Arn]}}
  C: {Value: {"Fn::If": [Undefined, 1, 2]}}
  D: {Description: none}
`
	tp, err := parseTemplate([]byte(broken))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"GetAtt Queue: no such resource",
		"Ref Ghost: no such parameter or resource",
		"Sub ${Nope}: no such parameter or resource",
		"Sub ${Queue.Arn}: no such parameter or resource",
		"condition Idle is never used",
		"condition Missing is used but not defined",
		"condition Undefined is used but not defined",
		"output D has no Value",
		"parameter Unused is never used",
		"resource Bad has no AWS:: Type",
	}
	slices.Sort(want)
	if diff := cmp.Diff(want, referenceProblems(tp)); diff != "" {
		t.Errorf("problems found in a broken template (-want +got):\n%s", diff)
	}
}

// TestTemplateFunction checks what lambdafn and the build depend on.
func TestTemplateFunction(t *testing.T) {
	tp := loadTemplate(t)
	var fn *yaml.Node
	for _, r := range tp.res {
		if scalarAt(r, "Type") == "AWS::Serverless::Function" {
			fn = get(r, "Properties")
		}
	}
	if fn == nil {
		t.Fatal("no AWS::Serverless::Function")
	}
	for key, want := range map[string]string{"Runtime": "provided.al2023", "Handler": "bootstrap", "CodeUri": "../dist/lambda.zip"} {
		if got := scalarAt(fn, key); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	if arch := path(fn, "Architectures"); arch == nil || len(arch.Content) != 1 || arch.Content[0].Value != "arm64" {
		t.Errorf("Architectures: want [arm64]")
	}
	for _, key := range []string{"MemorySize", "Timeout", "ReservedConcurrentExecutions", "FunctionUrlConfig"} {
		if get(fn, key) == nil {
			t.Errorf("function has no %s", key)
		}
	}
	if b, err := os.ReadFile(buildScript); err != nil || !strings.Contains(string(b), "dist/lambda.zip") {
		t.Errorf("%s does not write dist/lambda.zip, which CodeUri deploys (%v)", buildScript, err)
	}

	// Secrets are dynamic references, never text in the template.
	vars := path(fn, "Environment", "Variables")
	for _, name := range []string{"ANTHROPIC_API_KEY", "REDIS_URL"} {
		v := get(vars, name)
		if v == nil || !(strings.Contains(v.Value, "{{resolve:secretsmanager:") || strings.Contains(v.Value, "{{resolve:ssm")) {
			t.Errorf("environment %s must be a {{resolve:secretsmanager:…}} or {{resolve:ssm…}} reference", name)
		}
	}
	// The function authenticates: LAMBDAGENT_AUTH is set, from a
	// parameter that cannot say "none" (#13).
	if mode := get(vars, "LAMBDAGENT_AUTH"); mode == nil {
		t.Errorf("environment has no LAMBDAGENT_AUTH: the HTTP API would depend on the binary's default")
	} else if mode.Tag == "!Ref" {
		p := tp.params[mode.Value]
		allowed := get(p, "AllowedValues")
		if allowed == nil || slices.ContainsFunc(allowed.Content, func(n *yaml.Node) bool { return n.Value == "none" }) || scalarAt(p, "Default") == "none" {
			t.Errorf("LAMBDAGENT_AUTH comes from parameter %s, which must have AllowedValues without none", mode.Value)
		}
	} else if mode.Value == "none" || mode.Value == "" {
		t.Errorf("LAMBDAGENT_AUTH = %q: want key, jwt or apigw", mode.Value)
	}
	// Every LAMBDAGENT_* variable set here is one cmd/lambdagent reads.
	src := cmdSource(t)
	for i := 0; vars != nil && i+1 < len(vars.Content); i += 2 {
		if name := vars.Content[i].Value; strings.HasPrefix(name, "LAMBDAGENT_") && !strings.Contains(src, `"`+name+`"`) {
			t.Errorf("environment %s is not read by cmd/lambdagent", name)
		}
	}

	// The event sources: an HTTP API, SQS with partial batch answers and
	// a dead-letter queue, EventBridge.
	types := map[string]*yaml.Node{}
	events := get(fn, "Events")
	for i := 0; events != nil && i+1 < len(events.Content); i += 2 {
		ev := events.Content[i+1]
		types[scalarAt(ev, "Type")] = get(ev, "Properties")
	}
	for _, typ := range []string{"HttpApi", "SQS", "EventBridgeRule"} {
		if _, ok := types[typ]; !ok {
			t.Errorf("no %s event", typ)
		}
	}
	if sqsEv := types["SQS"]; sqsEv != nil {
		frt := get(sqsEv, "FunctionResponseTypes")
		if frt == nil || !slices.ContainsFunc(frt.Content, func(n *yaml.Node) bool { return n.Value == "ReportBatchItemFailures" }) {
			t.Errorf("SQS event without FunctionResponseTypes: [ReportBatchItemFailures]: every failure would redeliver the whole batch")
		}
		name, _, _ := strings.Cut(scalarAt(sqsEv, "Queue"), ".")
		q := tp.res[name]
		dlq := path(q, "Properties", "RedrivePolicy", "deadLetterTargetArn")
		if dlq == nil || dlq.Tag != "!GetAtt" {
			t.Errorf("queue %s has no RedrivePolicy.deadLetterTargetArn", name)
		} else {
			dlqName, _, _ := strings.Cut(dlq.Value, ".")
			// A FIFO queue needs a FIFO dead-letter queue: both follow
			// the same condition.
			fifo := path(q, "Properties", "FifoQueue")
			dlqFifo := path(tp.res[dlqName], "Properties", "FifoQueue")
			if fifo == nil || dlqFifo == nil || fifo.Tag != "!If" || dlqFifo.Tag != "!If" || fifo.Content[0].Value != dlqFifo.Content[0].Value {
				t.Errorf("queue %s and its dead-letter queue %s must be FIFO under the same condition", name, dlqName)
			}
		}
	}
}

// cmdSource returns the Go source of cmd/lambdagent and of the root
// package (lambdagent.OptionsFromEnv), where the environment is read.
func cmdSource(t *testing.T) string {
	t.Helper()
	files, err := filepath.Glob("../../cmd/lambdagent/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no cmd/lambdagent sources: %v", err)
	}
	root, err := filepath.Glob("../../*.go")
	if err != nil || len(root) == 0 {
		t.Fatalf("no root package sources: %v", err)
	}
	files = append(files, root...)
	var b strings.Builder
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(data)
	}
	return b.String()
}

// TestTemplateLint runs cfn-lint, which also expands the SAM transform,
// where it is installed (it is a Python tool; CI machines may not have
// it). The structural tests above run everywhere.
func TestTemplateLint(t *testing.T) {
	lint, err := exec.LookPath("cfn-lint")
	if err != nil {
		t.Log("cfn-lint not installed; the template is checked structurally only")
		return
	}
	if out, err := exec.Command(lint, templatePath).CombinedOutput(); err != nil {
		t.Errorf("cfn-lint %s: %v\n%s", templatePath, err, out)
	}
}
