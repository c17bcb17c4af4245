package platform

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"unsafe"

	"golang.org/x/sys/windows"
	"golang.zx2c4.com/wireguard/windows/tunnel/winipcfg"

	"github.com/weftmesh/weft/wire"
)

// wfpFirewall keeps weft's filters in a sublayer of its own, in a dynamic WFP session:
// Windows removes them when the session ends, even if weftd dies. Apply swaps the filter
// set inside one WFP transaction. It works alongside Windows Firewall, not through it.
type wfpFirewall struct {
	log *slog.Logger

	mu      sync.Mutex // serialises Apply and Close and guards the fields below
	engine  uintptr    // WFP engine handle; 0 once closed
	filters []uint64   // IDs of the filters in force
}

func newFirewall(log *slog.Logger) (Firewall, error) {
	name, err := windows.UTF16PtrFromString("weft")
	if err != nil {
		return nil, err
	}
	session := fwpmSession0{displayData: fwpmDisplayData0{name: name}, flags: fwpmSessionFlagDynamic}
	var engine uintptr
	if err := wfpCall(procFwpmEngineOpen0, "open WFP engine", 0, rpcCAuthnDefault, 0,
		uintptr(unsafe.Pointer(&session)), uintptr(unsafe.Pointer(&engine))); err != nil {
		return nil, fmt.Errorf("firewall: %w", err)
	}
	subName, err := windows.UTF16PtrFromString("weft access policy")
	if err != nil {
		return nil, err
	}
	sublayer := fwpmSublayer0{
		subLayerKey: windows.GUID(wfpSublayerKey),
		displayData: fwpmDisplayData0{name: subName},
		// Only the relative order of sublayers depends on this, not who wins: a block in
		// any sublayer beats permits in the others.
		weight: 0x8000,
	}
	if err := wfpCall(procFwpmSubLayerAdd0, "add WFP sublayer", engine, uintptr(unsafe.Pointer(&sublayer)), 0); err != nil {
		wfpCall(procFwpmEngineClose0, "close WFP engine", engine)
		return nil, fmt.Errorf("firewall: %w (is another weftd running?)", err)
	}
	return &wfpFirewall{log: log, engine: engine}, nil
}

func (f *wfpFirewall) Apply(iface string, self netip.Addr, filter wire.PacketFilter) error {
	if iface == "" {
		return errors.New("firewall: no interface name")
	}
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return fmt.Errorf("firewall: find interface %q: %w", iface, err)
	}
	luid, err := winipcfg.LUIDFromIndex(uint32(ifi.Index))
	if err != nil {
		return fmt.Errorf("firewall: LUID of interface %q: %w", iface, err)
	}
	filters, err := wfpFilters(uint64(luid), self, filter)
	if err != nil {
		return err
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	if f.engine == 0 {
		return errors.New("firewall: apply after close")
	}
	if err := wfpCall(procFwpmTransactionBegin0, "begin WFP transaction", f.engine, 0); err != nil {
		return fmt.Errorf("firewall: %w", err)
	}
	ids, err := f.swap(filters)
	if err == nil {
		err = wfpCall(procFwpmTransactionCommit0, "commit WFP transaction", f.engine)
	}
	if err != nil {
		wfpCall(procFwpmTransactionAbort0, "abort WFP transaction", f.engine)
		return fmt.Errorf("firewall: %w", err)
	}
	f.filters = ids
	f.log.Info("firewall rules applied", "iface", iface, "default_allow", filter.DefaultAllow,
		"rules", len(filter.Rules), "wfp_filters", len(ids))
	return nil
}

// swap deletes the filters in force and adds the new ones, inside the caller's transaction.
func (f *wfpFirewall) swap(filters []wfpFilter) ([]uint64, error) {
	for _, id := range f.filters {
		var err error
		if unsafe.Sizeof(uintptr(0)) == 8 {
			err = wfpCall(procFwpmFilterDeleteById0, "delete WFP filter", f.engine, uintptr(id))
		} else { // a UINT64 argument takes two words on 32-bit Windows
			err = wfpCall(procFwpmFilterDeleteById0, "delete WFP filter", f.engine, uintptr(uint32(id)), uintptr(id>>32))
		}
		if err != nil {
			return nil, err
		}
	}
	ids := make([]uint64, 0, len(filters))
	for _, flt := range filters {
		id, err := f.add(flt)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// toAPI turns a filter into FWPM_FILTER0, pinning the values it points to.
func (f *wfpFilter) toAPI(pin *runtime.Pinner) (*fwpmFilter0, error) {
	name, err := windows.UTF16PtrFromString(f.name)
	if err != nil {
		return nil, err
	}
	conds := make([]fwpmFilterCondition0, len(f.conds))
	for i, c := range f.conds {
		conds[i] = fwpmFilterCondition0{fieldKey: windows.GUID(c.field), matchType: fwpMatchEqual}
		if _, ok := c.value.(wfpPortRange); ok {
			conds[i].matchType = fwpMatchRange
		}
		conds[i].conditionValue = apiValue(c.value, pin)
	}
	action := uint32(fwpActionPermit)
	if f.action == wfpBlock {
		action = fwpActionBlock
	}
	api := &fwpmFilter0{
		displayData: fwpmDisplayData0{name: name},
		layerKey:    windows.GUID(f.layer),
		subLayerKey: windows.GUID(wfpSublayerKey),
		weight:      fwpValue0{typ: fwpUint8, value: uintptr(f.weight)},
		action:      fwpmAction0{typ: action},
	}
	if len(conds) > 0 {
		api.numFilterConditions = uint32(len(conds))
		api.filterCondition = &conds[0]
	}
	return api, nil
}

// add adds one filter and returns its ID.
func (f *wfpFirewall) add(flt wfpFilter) (uint64, error) {
	var pin runtime.Pinner
	defer pin.Unpin()
	api, err := flt.toAPI(&pin)
	if err != nil {
		return 0, err
	}
	var id uint64
	if err := wfpCall(procFwpmFilterAdd0, "add WFP filter "+flt.name, f.engine,
		uintptr(unsafe.Pointer(api)), 0, uintptr(unsafe.Pointer(&id))); err != nil {
		return 0, err
	}
	return id, nil
}

func (f *wfpFirewall) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.engine == 0 {
		return nil
	}
	// Closing a dynamic session deletes its sublayer and filters.
	err := wfpCall(procFwpmEngineClose0, "close WFP engine", f.engine)
	f.engine, f.filters = 0, nil
	if err != nil {
		return fmt.Errorf("firewall: %w", err)
	}
	f.log.Info("firewall rules removed")
	return nil
}

// apiValue converts a condition value. Values WFP takes by pointer are pinned, because the
// union holds them as a bare address the garbage collector does not see.
func apiValue(v wfpValue, pin *runtime.Pinner) fwpValue0 {
	ptr := func(p unsafe.Pointer) uintptr {
		pin.Pin(p)
		return uintptr(p)
	}
	switch v := v.(type) {
	case wfpUint8:
		return fwpValue0{typ: fwpUint8, value: uintptr(v)}
	case wfpUint16:
		return fwpValue0{typ: fwpUint16, value: uintptr(v)}
	case wfpUint32:
		return fwpValue0{typ: fwpUint32, value: uintptr(v)}
	case wfpUint64:
		p := new(uint64)
		*p = uint64(v)
		return fwpValue0{typ: fwpUint64, value: ptr(unsafe.Pointer(p))}
	case wfpV6Addr:
		p := new([16]byte)
		*p = v
		return fwpValue0{typ: fwpByteArray16Type, value: ptr(unsafe.Pointer(p))}
	case wfpV4Mask:
		p := &fwpV4AddrAndMask{addr: v.addr, mask: v.mask}
		return fwpValue0{typ: fwpV4AddrMask, value: ptr(unsafe.Pointer(p))}
	case wfpV6Prefix:
		p := &fwpV6AddrAndMask{addr: v.addr, prefixLength: v.bits}
		return fwpValue0{typ: fwpV6AddrMask, value: ptr(unsafe.Pointer(p))}
	case wfpPortRange:
		p := &fwpRange0{
			valueLow:  fwpValue0{typ: fwpUint16, value: uintptr(v.first)},
			valueHigh: fwpValue0{typ: fwpUint16, value: uintptr(v.last)},
		}
		return fwpValue0{typ: fwpRangeType, value: ptr(unsafe.Pointer(p))}
	}
	panic(fmt.Sprintf("firewall: unknown WFP value %T", v)) // wfpValue is closed in this package
}

var (
	modFwpuclnt                = windows.NewLazySystemDLL("fwpuclnt.dll")
	procFwpmEngineOpen0        = modFwpuclnt.NewProc("FwpmEngineOpen0")
	procFwpmEngineClose0       = modFwpuclnt.NewProc("FwpmEngineClose0")
	procFwpmSubLayerAdd0       = modFwpuclnt.NewProc("FwpmSubLayerAdd0")
	procFwpmFilterAdd0         = modFwpuclnt.NewProc("FwpmFilterAdd0")
	procFwpmFilterDeleteById0  = modFwpuclnt.NewProc("FwpmFilterDeleteById0")
	procFwpmTransactionBegin0  = modFwpuclnt.NewProc("FwpmTransactionBegin0")
	procFwpmTransactionCommit0 = modFwpuclnt.NewProc("FwpmTransactionCommit0")
	procFwpmTransactionAbort0  = modFwpuclnt.NewProc("FwpmTransactionAbort0")
)

// wfpCall calls a WFP function, which returns a Win32 error code (0 for success).
func wfpCall(proc *windows.LazyProc, what string, args ...uintptr) error {
	if err := proc.Find(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	r, _, _ := proc.Call(args...)
	if r != 0 {
		return fmt.Errorf("%s: %w", what, windows.Errno(r))
	}
	return nil
}

// Constants from fwptypes.h, fwpmtypes.h and rpcdce.h.
const (
	fwpUint8           = 1
	fwpUint16          = 2
	fwpUint32          = 3
	fwpUint64          = 4
	fwpByteArray16Type = 11
	fwpV4AddrMask      = 0x100
	fwpV6AddrMask      = 0x101
	fwpRangeType       = 0x102

	fwpMatchEqual = 0
	fwpMatchRange = 5

	fwpActionFlagTerminating = 0x1000
	fwpActionBlock           = 0x1 | fwpActionFlagTerminating
	fwpActionPermit          = 0x2 | fwpActionFlagTerminating

	fwpmSessionFlagDynamic = 0x1
	rpcCAuthnDefault       = 0xffffffff
)

// The WFP structures. Go lays these out as C does except where marked.

type fwpmDisplayData0 struct {
	name        *uint16
	description *uint16
}

type fwpByteBlob struct {
	size uint32
	data *uint8
}

// fwpValue0 is FWP_VALUE0 and FWP_CONDITION_VALUE0: a type and a pointer-sized union that
// holds values up to 32 bits and points to anything larger.
type fwpValue0 struct {
	typ   uint32
	value uintptr
}

type fwpV4AddrAndMask struct{ addr, mask uint32 }

type fwpV6AddrAndMask struct {
	addr         [16]byte
	prefixLength uint8
}

type fwpRange0 struct{ valueLow, valueHigh fwpValue0 }

type fwpmFilterCondition0 struct {
	fieldKey       windows.GUID
	matchType      uint32
	conditionValue fwpValue0
}

type fwpmAction0 struct {
	typ        uint32
	filterType windows.GUID // union with calloutKey
}

type fwpmFilter0 struct {
	filterKey           windows.GUID
	displayData         fwpmDisplayData0
	flags               uint32
	providerKey         *windows.GUID
	providerData        fwpByteBlob
	layerKey            windows.GUID
	subLayerKey         windows.GUID
	weight              fwpValue0
	numFilterConditions uint32
	filterCondition     *fwpmFilterCondition0
	action              fwpmAction0
	_                   [4]byte      // C aligns the next union (it holds a UINT64) to 8
	providerContextKey  windows.GUID // union with rawContext
	reserved            *windows.GUID
	_                   [8 - unsafe.Sizeof(uintptr(0))]byte // C aligns filterId to 8; Go to 4 on 32-bit
	filterID            uint64
	effectiveWeight     fwpValue0
}

type fwpmSession0 struct {
	sessionKey           windows.GUID
	displayData          fwpmDisplayData0
	flags                uint32
	txnWaitTimeoutInMSec uint32
	processID            uint32
	sid                  *windows.SID
	username             *uint16
	kernelMode           int32 // BOOL
}

type fwpmSublayer0 struct {
	subLayerKey  windows.GUID
	displayData  fwpmDisplayData0
	flags        uint32
	providerKey  *windows.GUID
	providerData fwpByteBlob
	weight       uint16
}

// The layouts above, checked against the Windows SDK's sizes and offsets at compile time
// (written as 32-bit value + 64-bit difference): a mismatch indexes out of range or
// overflows and fails the build.
const is64 = unsafe.Sizeof(uintptr(0)) / 8 // 1 on 64-bit, 0 on 32-bit

var (
	_ = [1]struct{}{}[unsafe.Sizeof(fwpValue0{})-(8+8*is64)]
	_ = [1]struct{}{}[unsafe.Sizeof(fwpmFilterCondition0{})-(28+12*is64)]
	_ = [1]struct{}{}[unsafe.Offsetof(fwpmFilterCondition0{}.conditionValue)-(20+4*is64)]
	_ = [1]struct{}{}[unsafe.Sizeof(fwpmFilter0{})-(152+48*is64)]
	_ = [1]struct{}{}[unsafe.Offsetof(fwpmFilter0{}.flags)-(24+8*is64)]
	_ = [1]struct{}{}[unsafe.Offsetof(fwpmFilter0{}.providerData)-(32+16*is64)]
	_ = [1]struct{}{}[unsafe.Offsetof(fwpmFilter0{}.layerKey)-(40+24*is64)]
	_ = [1]struct{}{}[unsafe.Offsetof(fwpmFilter0{}.weight)-(72+24*is64)]
	_ = [1]struct{}{}[unsafe.Offsetof(fwpmFilter0{}.filterCondition)-(84+36*is64)]
	_ = [1]struct{}{}[unsafe.Offsetof(fwpmFilter0{}.action)-(88+40*is64)]
	_ = [1]struct{}{}[unsafe.Offsetof(fwpmFilter0{}.providerContextKey)-(112+40*is64)]
	_ = [1]struct{}{}[unsafe.Offsetof(fwpmFilter0{}.filterID)-(136+40*is64)]
	_ = [1]struct{}{}[unsafe.Offsetof(fwpmFilter0{}.effectiveWeight)-(144+40*is64)]
	_ = [1]struct{}{}[unsafe.Sizeof(fwpmSession0{})-(48+24*is64)]
	_ = [1]struct{}{}[unsafe.Offsetof(fwpmSession0{}.sid)-(36+12*is64)]
	_ = [1]struct{}{}[unsafe.Offsetof(fwpmSession0{}.kernelMode)-(44+20*is64)]
	_ = [1]struct{}{}[unsafe.Sizeof(fwpmSublayer0{})-(44+28*is64)]
	_ = [1]struct{}{}[unsafe.Offsetof(fwpmSublayer0{}.weight)-(40+24*is64)]
)
