package main

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"
)

// latencies collects duration samples from many goroutines.
type latencies struct {
	mu      sync.Mutex
	samples []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.samples = append(l.samples, d)
	l.mu.Unlock()
}

func (l *latencies) summary() summary {
	l.mu.Lock()
	defer l.mu.Unlock()
	return summarize(l.samples)
}

// summary is the distribution of a set of samples. Percentiles are exact:
// computed from every sample, not from a histogram.
type summary struct {
	Count                         int
	Min, Mean, P50, P90, P99, Max time.Duration
}

// summarize sorts a copy of samples and reads the figures off it.
func summarize(samples []time.Duration) summary {
	if len(samples) == 0 {
		return summary{}
	}
	sorted := append([]time.Duration(nil), samples...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	var sum time.Duration
	for _, d := range sorted {
		sum += d
	}
	return summary{
		Count: len(sorted),
		Min:   sorted[0],
		Mean:  sum / time.Duration(len(sorted)),
		P50:   percentile(sorted, 50),
		P90:   percentile(sorted, 90),
		P99:   percentile(sorted, 99),
		Max:   sorted[len(sorted)-1],
	}
}

// percentile is the nearest-rank percentile p (0 < p ≤ 100) of sorted
// samples: the smallest sample that at least p% of the samples are ≤ to.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	// The epsilon keeps float error (n·p/100 = 90.00000000001) from
	// pushing the rank up by one.
	rank := int(math.Ceil(float64(len(sorted))*p/100 - 1e-9))
	rank = max(1, min(rank, len(sorted)))
	return sorted[rank-1]
}

func (s summary) String() string {
	if s.Count == 0 {
		return "n=0"
	}
	return fmt.Sprintf("n=%d p50=%s p90=%s p99=%s max=%s (min=%s mean=%s)",
		s.Count, ms(s.P50), ms(s.P90), ms(s.P99), ms(s.Max), ms(s.Min), ms(s.Mean))
}

// ms renders a duration in milliseconds with a precision that suits its size.
func ms(d time.Duration) string {
	v := millis(d)
	switch {
	case v >= 100 || v <= -100:
		return fmt.Sprintf("%.0fms", v)
	case v >= 10 || v <= -10:
		return fmt.Sprintf("%.1fms", v)
	default:
		return fmt.Sprintf("%.2fms", v)
	}
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// MarshalJSON writes the figures in milliseconds, the unit scripts compare.
func (s summary) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Count  int     `json:"count"`
		MinMS  float64 `json:"min_ms"`
		MeanMS float64 `json:"mean_ms"`
		P50MS  float64 `json:"p50_ms"`
		P90MS  float64 `json:"p90_ms"`
		P99MS  float64 `json:"p99_ms"`
		MaxMS  float64 `json:"max_ms"`
	}{s.Count, millis(s.Min), millis(s.Mean), millis(s.P50), millis(s.P90), millis(s.P99), millis(s.Max)})
}

// errorCounts counts failed requests by kind ("429 M_LIMIT_EXCEEDED",
// "transport: timeout") and keeps the first example of each kind.
type errorCounts struct {
	mu      sync.Mutex
	counts  map[string]int
	example map[string]string
}

func (e *errorCounts) add(kind, example string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.counts == nil {
		e.counts, e.example = map[string]int{}, map[string]string{}
	}
	if e.counts[kind] == 0 {
		e.example[kind] = example
	}
	e.counts[kind]++
}

func (e *errorCounts) total() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, c := range e.counts {
		n += c
	}
	return n
}

// byKind is a copy of the counts; never nil, so JSON shows {} for none.
func (e *errorCounts) byKind() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]int, len(e.counts))
	for k, c := range e.counts {
		out[k] = c
	}
	return out
}

// String lists the kinds, most frequent first, each with its first example.
func (e *errorCounts) String() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.counts) == 0 {
		return "none"
	}
	kinds := make([]string, 0, len(e.counts))
	total := 0
	for k, c := range e.counts {
		kinds = append(kinds, k)
		total += c
	}
	sort.Slice(kinds, func(i, j int) bool {
		if e.counts[kinds[i]] != e.counts[kinds[j]] {
			return e.counts[kinds[i]] > e.counts[kinds[j]]
		}
		return kinds[i] < kinds[j]
	})
	var b strings.Builder
	fmt.Fprintf(&b, "%d", total)
	for _, k := range kinds {
		fmt.Fprintf(&b, "\n  %6d × %s (first: %s)", e.counts[k], k, e.example[k])
	}
	return b.String()
}
