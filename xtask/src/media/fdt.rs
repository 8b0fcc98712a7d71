//! Flattened device trees (`.dtb`): read into a tree of nodes and properties, changed, and
//! written back — what the bundle needs to switch on a Pi feature that Debian's upstream
//! device trees leave off (SPI0), since the firmware's `dtparam=` only acts on Raspberry Pi
//! OS's trees. The format is the devicetree specification's (v17, chapter 5): a 40-byte
//! header, the memory reservation block, the structure block (tokens `BEGIN_NODE`, `END_NODE`,
//! `PROP`, `NOP`, `END`, big-endian, 4-byte aligned) and the strings block. Hand-written:
//! ~150 lines, and the crates that read device trees do not write them.

use anyhow::{bail, Context, Result};

const MAGIC: u32 = 0xd00d_feed;
const BEGIN_NODE: u32 = 1;
const END_NODE: u32 = 2;
const PROP: u32 = 3;
const NOP: u32 = 4;
const END: u32 = 9;
const HEADER_LEN: usize = 40;

/// A node: its name (`spi@7e204000`), properties in order, children in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub props: Vec<(String, Vec<u8>)>,
    pub children: Vec<Node>,
}

/// A whole device tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fdt {
    pub root: Node,
    /// the memory reservation block as read (pairs of u64, ending with 0, 0)
    reservations: Vec<u8>,
    boot_cpuid: u32,
}

fn be32(data: &[u8], at: usize) -> Result<u32> {
    let bytes = data
        .get(at..at + 4)
        .context("the device tree ends inside a field")?;
    Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn c_string(data: &[u8], at: usize) -> Result<String> {
    let rest = data
        .get(at..)
        .context("a name points outside the device tree")?;
    let len = rest
        .iter()
        .position(|b| *b == 0)
        .context("a name in the device tree has no end")?;
    Ok(String::from_utf8_lossy(&rest[..len]).into_owned())
}

impl Fdt {
    /// Parses a `.dtb`.
    pub fn parse(data: &[u8]) -> Result<Fdt> {
        if be32(data, 0)? != MAGIC {
            bail!("not a flattened device tree (no d00dfeed magic)");
        }
        let off_struct = be32(data, 8)? as usize;
        let off_strings = be32(data, 12)? as usize;
        let off_rsv = be32(data, 16)? as usize;
        let boot_cpuid = be32(data, 28)?;
        let mut reservations = Vec::new();
        let mut at = off_rsv;
        loop {
            let entry = data
                .get(at..at + 16)
                .context("reservation block cut short")?;
            reservations.extend_from_slice(entry);
            at += 16;
            if entry.iter().all(|b| *b == 0) {
                break;
            }
        }
        let mut at = off_struct;
        let mut stack: Vec<Node> = Vec::new();
        let mut root = None;
        loop {
            let token = be32(data, at)?;
            at += 4;
            match token {
                BEGIN_NODE => {
                    let name = c_string(data, at)?;
                    at = align4(at + name.len() + 1);
                    stack.push(Node {
                        name,
                        ..Node::default()
                    });
                }
                END_NODE => {
                    let node = stack.pop().context("END_NODE without a node")?;
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(node),
                        None => root = Some(node),
                    }
                }
                PROP => {
                    let len = be32(data, at)? as usize;
                    let name = c_string(data, off_strings + be32(data, at + 4)? as usize)?;
                    let value = data
                        .get(at + 8..at + 8 + len)
                        .context("a property runs past the end")?
                        .to_vec();
                    at = align4(at + 8 + len);
                    stack
                        .last_mut()
                        .context("a property outside any node")?
                        .props
                        .push((name, value));
                }
                NOP => {}
                END => break,
                other => bail!("unknown device tree token {other:#x}"),
            }
        }
        Ok(Fdt {
            root: root.context("the device tree has no root node")?,
            reservations,
            boot_cpuid,
        })
    }

    /// The `.dtb` bytes (version 17).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut strings: Vec<u8> = Vec::new();
        let mut structure: Vec<u8> = Vec::new();
        write_node(&self.root, &mut structure, &mut strings);
        structure.extend_from_slice(&END.to_be_bytes());
        let off_rsv = HEADER_LEN.next_multiple_of(8);
        let off_struct = off_rsv + self.reservations.len();
        let off_strings = off_struct + structure.len();
        let total = off_strings + strings.len();
        let mut out = Vec::with_capacity(total);
        for field in [
            MAGIC,
            total as u32,
            off_struct as u32,
            off_strings as u32,
            off_rsv as u32,
            17,
            16,
            self.boot_cpuid,
            strings.len() as u32,
            structure.len() as u32,
        ] {
            out.extend_from_slice(&field.to_be_bytes());
        }
        out.resize(off_rsv, 0);
        out.extend_from_slice(&self.reservations);
        out.extend_from_slice(&structure);
        out.extend_from_slice(&strings);
        out
    }

    /// The largest `phandle` in the tree (0: none).
    pub fn max_phandle(&self) -> u32 {
        fn walk(node: &Node) -> u32 {
            let own = node
                .prop("phandle")
                .and_then(|v| v.get(..4))
                .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            node.children.iter().map(walk).fold(own, u32::max)
        }
        walk(&self.root)
    }
}

fn write_node(node: &Node, out: &mut Vec<u8>, strings: &mut Vec<u8>) {
    out.extend_from_slice(&BEGIN_NODE.to_be_bytes());
    out.extend_from_slice(node.name.as_bytes());
    out.push(0);
    out.resize(align4(out.len()), 0);
    for (name, value) in &node.props {
        let offset = string_offset(strings, name);
        out.extend_from_slice(&PROP.to_be_bytes());
        out.extend_from_slice(&(value.len() as u32).to_be_bytes());
        out.extend_from_slice(&offset.to_be_bytes());
        out.extend_from_slice(value);
        out.resize(align4(out.len()), 0);
    }
    for child in &node.children {
        write_node(child, out, strings);
    }
    out.extend_from_slice(&END_NODE.to_be_bytes());
}

/// The offset of `name` in the strings block, added when new.
fn string_offset(strings: &mut Vec<u8>, name: &str) -> u32 {
    let mut at = 0;
    for s in strings.split(|b| *b == 0) {
        if s == name.as_bytes() && at < strings.len() {
            return at as u32;
        }
        at += s.len() + 1;
    }
    let offset = strings.len() as u32;
    strings.extend_from_slice(name.as_bytes());
    strings.push(0);
    offset
}

impl Node {
    /// A property's value.
    pub fn prop(&self, name: &str) -> Option<&[u8]> {
        self.props
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// Sets a property (replacing its value in place, or adding it last).
    pub fn set_prop(&mut self, name: &str, value: Vec<u8>) {
        match self.props.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => *v = value,
            None => self.props.push((name.to_string(), value)),
        }
    }

    /// The first node below this one (itself included) named `name`, depth first.
    pub fn find_mut(&mut self, name: &str) -> Option<&mut Node> {
        if self.name == name {
            return Some(self);
        }
        self.children.iter_mut().find_map(|c| c.find_mut(name))
    }
}

/// A string property's value (NUL-terminated).
pub fn string(value: &str) -> Vec<u8> {
    let mut bytes = value.as_bytes().to_vec();
    bytes.push(0);
    bytes
}

/// A property of 32-bit cells.
pub fn cells(values: &[u32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_be_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Fdt {
        Fdt {
            root: Node {
                name: String::new(),
                props: vec![("model".into(), string("test"))],
                children: vec![Node {
                    name: "soc".into(),
                    props: vec![("#address-cells".into(), cells(&[1]))],
                    children: vec![Node {
                        name: "spi@7e204000".into(),
                        props: vec![
                            ("status".into(), string("disabled")),
                            ("phandle".into(), cells(&[7])),
                        ],
                        children: vec![],
                    }],
                }],
            },
            reservations: vec![0; 16],
            boot_cpuid: 0,
        }
    }

    #[test]
    fn round_trip_and_edit() {
        let fdt = sample();
        let bytes = fdt.to_bytes();
        assert_eq!(&bytes[..4], &MAGIC.to_be_bytes());
        assert_eq!(be32(&bytes, 4).unwrap() as usize, bytes.len());
        let mut back = Fdt::parse(&bytes).unwrap();
        assert_eq!(back, fdt);
        assert_eq!(back.max_phandle(), 7);
        let spi = back.root.find_mut("spi@7e204000").unwrap();
        spi.set_prop("status", string("okay"));
        spi.children.push(Node {
            name: "spidev@0".into(),
            props: vec![("reg".into(), cells(&[0]))],
            children: vec![],
        });
        let again = Fdt::parse(&back.to_bytes()).unwrap();
        assert_eq!(again, back);
        assert!(Fdt::parse(b"not a dtb at all, no magic here.........").is_err());
    }
}
