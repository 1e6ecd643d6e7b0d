package topology

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestBuiltinNames(t *testing.T) {
	got := BuiltinNames()
	want := []string{"three-city-five-dc", "two-city-three-dc"}
	if !slices.Equal(got, want) {
		t.Errorf("BuiltinNames() = %v, want %v", got, want)
	}
}

func TestBuiltins(t *testing.T) {
	tests := []struct {
		name               string
		cities, dcs, links int
		lostCity           string
		cityKept           bool
	}{
		{"three-city-five-dc", 3, 5, 10, "hangzhou", true},
		{"two-city-three-dc", 2, 3, 3, "hangzhou", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp, err := Builtin(tt.name)
			if err != nil {
				t.Fatal(err)
			}
			if tp.Name != tt.name || tp.Source != "builtin:"+tt.name {
				t.Errorf("Name, Source = %q, %q", tp.Name, tp.Source)
			}
			if len(tp.Cities) != tt.cities || len(tp.Datacenters) != tt.dcs || len(tp.Links) != tt.links {
				t.Errorf("got %d cities, %d DCs, %d links; want %d, %d, %d",
					len(tp.Cities), len(tp.Datacenters), len(tp.Links), tt.cities, tt.dcs, tt.links)
			}
			if tp.Description == "" {
				t.Error("no description")
			}
			for _, l := range tp.Survival() {
				if l.Kind == "city" && l.Name == tt.lostCity && l.MajorityKept != tt.cityKept {
					t.Errorf("%v, want majority kept = %v", l, tt.cityKept)
				}
			}
		})
	}
}

func TestThreeCityFiveDCIsFullMesh(t *testing.T) {
	tp, err := Builtin(Default)
	if err != nil {
		t.Fatal(err)
	}
	ids := tp.DCIDs()
	for i, a := range ids {
		for _, b := range ids[i+1:] {
			if _, ok := tp.Link(a, b); !ok {
				t.Errorf("no link between %s and %s", a, b)
			}
		}
	}
}

func TestBuiltinUnknown(t *testing.T) {
	_, err := Builtin("nope")
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Builtin(nope) error = %v, want ErrNotFound", err)
	}
	if !strings.Contains(err.Error(), "three-city-five-dc, two-city-three-dc") {
		t.Errorf("error does not list the built-ins: %v", err)
	}
}

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	write(t, good, lines("name: lab", "cities: [{name: hangzhou}]", "datacenters: [{id: hz-a, city: hangzhou}]"))
	write(t, bad, lines("name: lab", "cities: [{name: hangzhou}]", "datacenters: [{id: hz-a, city: shanghai}]"))

	tests := []struct {
		arg    string
		source string // want, when no error
		err    string // a part of the error
	}{
		{"", "builtin:three-city-five-dc", ""},
		{"two-city-three-dc", "builtin:two-city-three-dc", ""},
		{good, good, ""},
		{bad, "", bad + ":3:32: datacenters[0].city: unknown city"},
		{filepath.Join(dir, "missing.yaml"), "", "is neither a built-in topology (three-city-five-dc, two-city-three-dc) nor a file"},
		{"three-city", "", "is neither a built-in topology"},
	}
	for _, tt := range tests {
		t.Run(tt.arg, func(t *testing.T) {
			got, err := Resolve(tt.arg)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Resolve() error = %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Source != tt.source {
				t.Errorf("Source = %q, want %q", got.Source, tt.source)
			}
		})
	}
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}
