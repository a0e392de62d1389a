// Package engine advances workflow runs: it walks a definition
// (internal/workflow), runs each step that has no committed result, and
// commits every result to a [Store] together with the run's state, under
// a lease on the run that fences out any other advancer (see #16).
//
// A run is replayed, not resumed from a program counter: an advancer
// reads the run's committed step results once when it takes the lease,
// walks the definition from the top, takes each committed step's output
// as it is and runs the first step without one. The walk is
// deterministic (branches read committed outputs only), so every
// advancer reaches the same step, and a step committed once is never run
// again. A step cut before its commit runs again; a tool step passes the
// same tool_use id each time, derived from the run and the step.
//
// Sleeps and event waits end the walk: the run is committed as sleeping
// or waiting with a due time, the lease is released, and a timer in the
// store (fired by [Engine.FireTimers]) or the event puts the run back on
// the ready queue that [Engine.Work] reads.
package engine
