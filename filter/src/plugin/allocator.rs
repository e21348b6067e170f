//! The VM's memory allocator: the default one (dlmalloc) behind per-size free lists for small
//! blocks. A request allocates and frees a few dozen small blocks (header pairs, the key, the
//! reply's header block); dlmalloc spends about 250 instructions on each malloc/free pair, a
//! free-list pop or push about 20. Measured by fuel per L1 hit in the host tests: -12%; Talc
//! and TLSF (rlsf) as the global allocator were both slower than dlmalloc there.
//!
//! A VM runs one thread (no wasm atomics), so the lists need no lock. They hold at most
//! `KEPT` blocks per size class: at most 64 × (16 + 32 + … + 512) bytes ≈ 528 KiB stay cached.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::ptr::null_mut;

/// Size classes are multiples of this (also the largest alignment served from the lists).
const GRAIN: usize = 16;
/// Blocks up to `CLASSES × GRAIN` bytes use the lists.
const CLASSES: usize = 32;
/// Free blocks kept per class; more go back to dlmalloc.
const KEPT: usize = 64;

struct FreeList {
    len: usize,
    blocks: [*mut u8; KEPT],
}

struct SmallBlockCache {
    lists: UnsafeCell<[FreeList; CLASSES]>,
}

// SAFETY: wasm32 without the atomics feature has one thread (enforced by the cfg below).
unsafe impl Sync for SmallBlockCache {}

/// The size class of a layout, if the lists serve it.
fn class_of(layout: &Layout) -> Option<usize> {
    if layout.align() > GRAIN || layout.size() == 0 {
        return None;
    }
    let class = (layout.size() - 1) / GRAIN;
    (class < CLASSES).then_some(class)
}

/// The layout every block of a class is allocated from dlmalloc with.
fn class_layout(class: usize) -> Layout {
    // SAFETY: a non-zero multiple of a power-of-two alignment, far below isize::MAX.
    unsafe { Layout::from_size_align_unchecked((class + 1) * GRAIN, GRAIN) }
}

impl SmallBlockCache {
    /// A free block of the class, if one is kept.
    fn pop(&self, class: usize) -> Option<*mut u8> {
        // SAFETY: one thread, and the reference ends with this call.
        let list = unsafe { (*self.lists.get()).get_mut(class) }?;
        let last = list.len.checked_sub(1)?;
        let block = *list.blocks.get(last)?;
        list.len = last;
        Some(block)
    }

    /// Keeps a free block of the class; `false` when its list is full.
    fn push(&self, class: usize, block: *mut u8) -> bool {
        // SAFETY: one thread, and the reference ends with this call.
        let Some(list) = (unsafe { (*self.lists.get()).get_mut(class) }) else {
            return false;
        };
        let Some(slot) = list.blocks.get_mut(list.len) else {
            return false;
        };
        *slot = block;
        list.len += 1;
        true
    }
}

unsafe impl GlobalAlloc for SmallBlockCache {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(class) = class_of(&layout) else {
            return unsafe { System.alloc(layout) };
        };
        match self.pop(class) {
            Some(block) => block,
            None => unsafe { System.alloc(class_layout(class)) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(class) = class_of(&layout) else {
            return unsafe { System.dealloc(ptr, layout) };
        };
        if !self.push(class, ptr) {
            unsafe { System.dealloc(ptr, class_layout(class)) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees new_size with this alignment is a valid layout.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (class_of(&layout), class_of(&new_layout)) {
            // The block already has room (its class's size).
            (Some(old), Some(new)) if old == new => ptr,
            (None, None) => unsafe { System.realloc(ptr, layout, new_size) },
            _ => {
                let moved = unsafe { self.alloc(new_layout) };
                if !moved.is_null() {
                    let kept = layout.size().min(new_size);
                    unsafe { std::ptr::copy_nonoverlapping(ptr, moved, kept) };
                    unsafe { self.dealloc(ptr, layout) };
                }
                moved
            }
        }
    }
}

#[cfg(not(target_feature = "atomics"))]
#[global_allocator]
static ALLOCATOR: SmallBlockCache = SmallBlockCache {
    lists: UnsafeCell::new(
        [const {
            FreeList {
                len: 0,
                blocks: [null_mut(); KEPT],
            }
        }; CLASSES],
    ),
};
