package persistence

import (
	"slices"
	"testing"
)

func TestSearchWordsAreLowercasedRunsOfLettersAndDigits(t *testing.T) {
	for _, tc := range []struct {
		term string
		want []string
	}{
		{"Martians and men", []string{"martians", "and", "men"}},
		{`"quoted phrase" OR -not (x*)`, []string{"quoted", "phrase", "or", "not", "x"}},
		{"GRÜSSE, Köln! 2024", []string{"grüsse", "köln", "2024"}},
		{"fox Fox FOX", []string{"fox"}},
		{"  !?* -- ", nil},
		{"", nil},
	} {
		if got := SearchWords(tc.term); !slices.Equal(got, tc.want) {
			t.Errorf("SearchWords(%q) = %q, want %q", tc.term, got, tc.want)
		}
	}
}
