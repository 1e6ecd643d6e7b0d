package tui

import "github.com/fibercut/fibercut/topology"

// Lang is the language of the screens: "zh" or "en".
type Lang string

// The languages.
const (
	ZH Lang = "zh"
	EN Lang = "en"
)

// ParseLang reads a --lang value.
func ParseLang(s string) (Lang, bool) {
	switch Lang(s) {
	case ZH, EN:
		return Lang(s), true
	}
	return "", false
}

// other is the language L switches to.
func (l Lang) other() Lang {
	if l == ZH {
		return EN
	}
	return ZH
}

// words holds every fixed text of the screens, in both languages; the
// banners use the audience page's words.
var words = map[string][2]string{ // key: {zh, en}
	"title":              {"fibercut · 三地五中心 · 剪断光纤", "fibercut · three cities, five datacenters · cut the cables"},
	"join":               {"扫码领取 ¥1,000,000 虚拟账户", "Scan for a virtual account holding ¥1,000,000"},
	"joined":             {"已开户", "accounts opened"},
	"audience":           {"现场观众", "the hall"},
	"audience.none":      {"尚无观众开户", "no account opened from a phone yet"},
	"audience.switched":  {"异地服务", "served elsewhere"},
	"audience.transfers": {"已确认转账", "transfers ok"},
	"map":                {"机房与光纤", "datacenters and fibers"},
	"rate":               {"每秒转账", "transfers/s"},
	"rto":                {"恢复时间 RTO", "recovery time (RTO)"},
	"rto.wait":           {"等待故障", "waiting for a fault"},
	"rto.running":        {"恢复中…", "recovering…"},
	"rto.stopped":        {"已恢复", "recovered"},
	"first":              {"首笔成功", "first success"},
	"money":              {"资金", "money"},
	"money.none":         {"尚无余额", "no balance read yet"},
	"money.unread":       {"暂不可读(无多数派)", "unreadable (no quorum answers)"},
	"money.bad":          {"资金不守恒!", "money NOT conserved!"},
	"log":                {"事件", "events"},
	"switching":          {"容灾切换中", "switching datacenter…"},
	"switched":           {"已切换至其他城市", "switched to another city"},
	"verdict":            {"结论", "verdict"},
	"lost":               {"丢失", "lost"},
	"unknown":            {"未知已确认", "unknowns settled"},
	"checks":             {"校验", "checks"},
	"gap":                {"最长中断", "longest gap"},
	"report":             {"报告", "report"},
	"small":              {"终端太小:至少 80×24", "terminal too small: at least 80×24"},
	"countdown":          {"即将剪断", "cutting in"},
	"cancel":             {"esc 取消", "esc cancels"},
	"key.join":           {"进入仪表盘", "dashboard"},
	"key.cut":            {"剪断(倒数 3-2-1)", "cut (3-2-1)"},
	"key.cancel":         {"取消倒数", "cancel the countdown"},
	"key.heal":           {"全部恢复", "heal all"},
	"key.isolate":        {"隔离第 n 个机房", "isolate the n-th DC"},
	"key.leader":         {"隔离主节点机房", "isolate the leader's DC"},
	"key.qr":             {"二维码", "QR code"},
	"key.presenter":      {"演讲模式", "presenter"},
	"key.lang":           {"中文/English", "中文/English"},
	"key.finish":         {"结束并校验", "finish and verify"},
	"key.quit":           {"恢复后退出", "heal, then quit"},
	"key.quit.view":      {"退出", "quit"},
	"key.help":           {"帮助", "help"},
	"ok":                 {"正常", "ok"},
	"cut":                {"已断", "cut"},
	"lossy":              {"丢包", "lossy"},
	"delayed":            {"延迟", "delayed"},
	"throttled":          {"限速", "throttled"},
	"down":               {"断电", "down"},
	"paused":             {"冻结", "paused"},
	"isolated":           {"孤立", "cut off"},
	"leader":             {"主", "leader"},
	"noquorum":           {"无多数派", "no quorum"},
	"pass":               {"通过", "PASS"},
	"fail":               {"未通过", "FAIL"},
	"replay":             {"回放", "replay"},
	"fibers":             {"光纤", "fibers"},
	"verifying":          {"校验中…", "verifying…"},
}

// t returns the text of key in lang.
func (l Lang) t(key string) string {
	w, ok := words[key]
	if !ok {
		return key
	}
	if l == ZH {
		return w[0]
	}
	return w[1]
}

// city returns a city's name in lang, from the topology.
func (l Lang) city(t *topology.Topology, name string) string {
	if c, ok := t.City(name); ok {
		if l == ZH && c.ZH != "" {
			return c.ZH
		}
		if l == EN && c.EN != "" {
			return c.EN
		}
	}
	return name
}
