package main

import (
	"encoding/json"
	"math/rand"
	"strings"
	"sync"
	"testing"
	"time"
)

func msSamples(vals ...int) []time.Duration {
	out := make([]time.Duration, len(vals))
	for i, v := range vals {
		out[i] = time.Duration(v) * time.Millisecond
	}
	return out
}

func TestSummaryPercentilesAreNearestRankOverAllSamples(t *testing.T) {
	oneToHundred := make([]int, 100)
	for i := range oneToHundred {
		oneToHundred[i] = 100 - i // reverse order: summarize must sort
	}
	oneToThousand := make([]int, 1000)
	for i := range oneToThousand {
		oneToThousand[i] = i + 1
	}
	rand.New(rand.NewSource(1)).Shuffle(len(oneToThousand), func(i, j int) {
		oneToThousand[i], oneToThousand[j] = oneToThousand[j], oneToThousand[i]
	})
	for _, tc := range []struct {
		name                       string
		samples                    []time.Duration
		mean                       time.Duration
		min, p50, p90, p99, maxVal int
	}{
		{"one sample is every percentile", msSamples(7), 7 * time.Millisecond, 7, 7, 7, 7, 7},
		{"two samples: p50 is the lower", msSamples(10, 20), 15 * time.Millisecond, 10, 10, 20, 20, 20},
		{"1..100 reversed", msSamples(oneToHundred...), 50500 * time.Microsecond, 1, 50, 90, 99, 100},
		{"1..1000 shuffled", msSamples(oneToThousand...), 500500 * time.Microsecond, 1, 500, 900, 990, 1000},
		{"one outlier shows at max, not p99 of 1000", msSamples(append(make([]int, 999), 5000)...), 5 * time.Millisecond, 0, 0, 0, 0, 5000},
		{"negative samples sort below zero", msSamples(-3, 1, 2), 0, -3, 1, 2, 2, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := append([]time.Duration(nil), tc.samples...)
			s := summarize(tc.samples)
			want := summary{
				Count: len(tc.samples),
				Min:   time.Duration(tc.min) * time.Millisecond,
				Mean:  tc.mean,
				P50:   time.Duration(tc.p50) * time.Millisecond,
				P90:   time.Duration(tc.p90) * time.Millisecond,
				P99:   time.Duration(tc.p99) * time.Millisecond,
				Max:   time.Duration(tc.maxVal) * time.Millisecond,
			}
			if s != want {
				t.Errorf("summarize = %+v, want %+v", s, want)
			}
			for i := range before {
				if before[i] != tc.samples[i] {
					t.Fatalf("summarize reordered its input")
				}
			}
		})
	}
}

func TestSummaryOfNoSamplesIsZero(t *testing.T) {
	if s := summarize(nil); s != (summary{}) {
		t.Errorf("summarize(nil) = %+v", s)
	}
	if got := summarize(nil).String(); got != "n=0" {
		t.Errorf("String() = %q", got)
	}
}

func TestSummaryJSONIsInMilliseconds(t *testing.T) {
	raw, err := json.Marshal(summarize([]time.Duration{1500 * time.Microsecond, 2500 * time.Microsecond}))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]float64
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"count": 2, "min_ms": 1.5, "mean_ms": 2, "p50_ms": 1.5, "p90_ms": 2.5, "p99_ms": 2.5, "max_ms": 2.5}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (all: %s)", k, got[k], v, raw)
		}
	}
}

func TestLatenciesKeepEverySampleFromConcurrentWriters(t *testing.T) {
	var l latencies
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; i <= 250; i++ {
				l.add(time.Duration(i) * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	s := l.summary()
	if s.Count != 2000 || s.Min != time.Millisecond || s.Max != 250*time.Millisecond || s.P50 != 125*time.Millisecond {
		t.Errorf("summary = %+v", s)
	}
}

func TestErrorCountsGroupByKindMostFrequentFirst(t *testing.T) {
	var e errorCounts
	if e.String() != "none" || e.total() != 0 || len(e.byKind()) != 0 {
		t.Fatalf("empty counts: %q %d %v", e.String(), e.total(), e.byKind())
	}
	e.add("500 M_UNKNOWN", "first 500")
	e.add("429 M_LIMIT_EXCEEDED", "first 429")
	e.add("429 M_LIMIT_EXCEEDED", "second 429")
	if e.total() != 3 {
		t.Errorf("total = %d", e.total())
	}
	if got := e.byKind(); got["429 M_LIMIT_EXCEEDED"] != 2 || got["500 M_UNKNOWN"] != 1 {
		t.Errorf("byKind = %v", got)
	}
	s := e.String()
	if !strings.HasPrefix(s, "3\n") || strings.Index(s, "429") > strings.Index(s, "500") || !strings.Contains(s, "first 429") || strings.Contains(s, "second 429") {
		t.Errorf("String() =\n%s", s)
	}
}
