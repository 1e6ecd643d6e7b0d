package topology

import (
	"slices"
	"testing"
)

func TestSurvival(t *testing.T) {
	tests := []struct {
		name string
		want []string
	}{
		{"three-city-five-dc", []string{
			"lose hangzhou: 3 of 5 remain, majority kept",
			"lose shanghai: 3 of 5 remain, majority kept",
			"lose shenzhen: 4 of 5 remain, majority kept",
			"lose hz-a: 4 of 5 remain, majority kept",
			"lose hz-b: 4 of 5 remain, majority kept",
			"lose sh-a: 4 of 5 remain, majority kept",
			"lose sh-b: 4 of 5 remain, majority kept",
			"lose sz-a: 4 of 5 remain, majority kept",
		}},
		{"two-city-three-dc", []string{
			"lose hangzhou: 1 of 3 remain, majority LOST",
			"lose shanghai: 2 of 3 remain, majority kept",
			"lose hz-a: 2 of 3 remain, majority kept",
			"lose hz-b: 2 of 3 remain, majority kept",
			"lose sh-a: 2 of 3 remain, majority kept",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp, err := Builtin(tt.name)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, l := range tp.Survival() {
				got = append(got, l.String())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Survival() =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestSurvivalEvenSplit(t *testing.T) {
	// Two DCs in two cities: losing either leaves 1 of 2, not a strict majority.
	tp := minimal()
	tp.Cities = append(tp.Cities, City{Name: "shanghai"})
	tp.Datacenters = append(tp.Datacenters, Datacenter{ID: "sh-a", City: "shanghai", UnitWeight: 1})
	for _, l := range tp.Survival() {
		want := Loss{Kind: l.Kind, Name: l.Name, Remaining: 1, Total: 2, MajorityKept: false}
		if l != want {
			t.Errorf("got %+v, want %+v", l, want)
		}
	}
	if n := len(tp.Survival()); n != 4 {
		t.Errorf("%d losses, want 4 (2 cities, 2 DCs)", n)
	}
}
