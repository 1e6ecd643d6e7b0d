package lab

import (
	"net/netip"
	"testing"
)

func TestFreeSubnetSkipsUsed(t *testing.T) {
	p := netip.MustParsePrefix
	tests := []struct {
		name string
		used []netip.Prefix
		want netip.Prefix
	}{
		{"empty", nil, p("10.200.0.0/24")},
		{"first taken", []netip.Prefix{p("10.200.0.0/24")}, p("10.200.1.0/24")},
		{"covered by a /16", []netip.Prefix{p("10.200.0.0/16")}, p("10.201.0.0/24")},
		{"host address inside", []netip.Prefix{p("10.200.0.77/32"), p("10.200.1.0/25")}, p("10.200.2.0/24")},
		{"unrelated", []netip.Prefix{p("172.17.0.0/16"), p("192.168.0.0/20")}, p("10.200.0.0/24")},
		{"the whole 10/8", []netip.Prefix{p("10.0.0.0/8")}, netip.Prefix{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := freeSubnet(tt.used)
			if !tt.want.IsValid() {
				if err == nil {
					t.Fatalf("freeSubnet = %s, want an error", got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("freeSubnet = %s, %v; want %s", got, err, tt.want)
			}
		})
	}
}

func TestHostAddr(t *testing.T) {
	n := Network{Subnet: netip.MustParsePrefix("10.200.3.0/24")}
	if got := n.hostAddr(firstDCHost + 4); got != netip.MustParseAddr("10.200.3.14") {
		t.Fatalf("hostAddr = %s", got)
	}
}

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"default", "demo", "a", "t0123abcd", "stage-2018"} {
		if err := ValidateName(ok); err != nil {
			t.Errorf("ValidateName(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", "Demo", "1lab", "-x", "a_b", "a.b", "averyveryverylongname1"} {
		if err := ValidateName(bad); err == nil {
			t.Errorf("ValidateName(%q) = nil, want an error", bad)
		}
	}
}
