package telemetry

import (
	"math"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// CloudWatch Embedded Metric Format limits (see the specification and the
// validation of AWS's own EMF libraries).
const (
	emfMaxValues      = 100  // values of one metric in one record
	emfMaxDimValueLen = 1024 // bytes of a dimension value
)

// An emfMetric is one MetricDefinition and its value(s).
type emfMetric struct {
	name, unit string
	value      float64   // the value, when values is nil
	values     []float64 // several values; at most emfMaxValues are written
}

// An emfDirective is one MetricDirective: metrics that share dimension sets.
type emfDirective struct {
	dims    [][]string // each a DimensionSet: names of string members
	metrics []emfMetric
}

// An emfProp is a top-level string member: a dimension's value, or a
// property kept with the record for Logs Insights.
type emfProp struct{ key, value string }

// appendEMF renders one EMF record as a single JSON line:
//
//	{"_aws":{"Timestamp":…,"CloudWatchMetrics":[{"Namespace":…,"Dimensions":[[…]],"Metrics":[{"Name":…,"Unit":…}]}]},
//	 "Function":"…","Model":"…","TurnDuration":123.4,…}
//
// Metric names must be unique across the directives, and every dimension
// named must be among props. The caller keeps to both.
func appendEMF(b []byte, namespace string, ts time.Time, dirs []emfDirective, props []emfProp) []byte {
	b = append(b, `{"_aws":{"Timestamp":`...)
	b = strconv.AppendInt(b, ts.UnixMilli(), 10)
	b = append(b, `,"CloudWatchMetrics":[`...)
	for i, d := range dirs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"Namespace":`...)
		b = appendJSONString(b, namespace)
		b = append(b, `,"Dimensions":[`...)
		for j, set := range d.dims {
			if j > 0 {
				b = append(b, ',')
			}
			b = append(b, '[')
			for k, name := range set {
				if k > 0 {
					b = append(b, ',')
				}
				b = appendJSONString(b, name)
			}
			b = append(b, ']')
		}
		b = append(b, `],"Metrics":[`...)
		for j, m := range d.metrics {
			if j > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"Name":`...)
			b = appendJSONString(b, m.name)
			b = append(b, `,"Unit":`...)
			b = appendJSONString(b, m.unit)
			b = append(b, '}')
		}
		b = append(b, "]}"...)
	}
	b = append(b, "]}"...)
	for _, p := range props {
		b = append(b, ',')
		b = appendJSONString(b, p.key)
		b = append(b, ':')
		b = appendJSONString(b, p.value)
	}
	for _, d := range dirs {
		for _, m := range d.metrics {
			b = append(b, ',')
			b = appendJSONString(b, m.name)
			b = append(b, ':')
			vs := m.values
			if len(vs) > emfMaxValues {
				vs = vs[:emfMaxValues]
			}
			if vs == nil {
				b = appendNumber(b, m.value)
				continue
			}
			if len(vs) == 1 {
				b = appendNumber(b, vs[0])
				continue
			}
			b = append(b, '[')
			for k, v := range vs {
				if k > 0 {
					b = append(b, ',')
				}
				b = appendNumber(b, v)
			}
			b = append(b, ']')
		}
	}
	return append(b, "}\n"...)
}

func appendNumber(b []byte, v float64) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		v = 0 // not representable in JSON; never produced by our measurements
	}
	return strconv.AppendFloat(b, v, 'f', -1, 64)
}

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return append(b, '"')
}

// dimValue makes s a valid CloudWatch dimension value: printable ASCII,
// not blank, at most emfMaxDimValueLen bytes. Others' bytes become '_';
// an empty value becomes def.
func dimValue(s, def string) string {
	if s == "" {
		return def
	}
	if len(s) > emfMaxDimValueLen {
		s = s[:emfMaxDimValueLen]
	}
	clean, blank := true, true
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			clean = false
		}
		if s[i] != ' ' {
			blank = false
		}
	}
	if blank {
		return def
	}
	if clean {
		return s
	}
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '_'
		}
	}
	return string(b)
}

// writeEMF writes one record to Config.EMF, whole, under a lock so that
// records of concurrent turns never interleave.
func (t *Telemetry) writeEMF(ts time.Time, dirs []emfDirective, props []emfProp) {
	bp := emfBufs.Get().(*[]byte)
	b := appendEMF((*bp)[:0], t.namespace, ts, dirs, props)
	t.emfMu.Lock()
	_, _ = t.emf.Write(b)
	t.emfMu.Unlock()
	if cap(b) <= 16<<10 {
		*bp = b
		emfBufs.Put(bp)
	}
}

// emfBufs recycles record buffers: a turn's record is about 1 KB.
var emfBufs = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}
