//! Task lists of the theory experiment, written as the authors' `manual_task` strings
//! (`"0,1;1,2;2,0"`: tasks separated by `;`, each a comma-separated list of active modules;
//! repeated indices collapse, so `"0,0"` is the one-hot of module 0), and the rule that labels a
//! list *blessed* (its support lets a student identify the teacher's modules) or *doomed*
//! (spec §7.2, checked against every annotated list of the authors' sweeps):
//!
//! - discrete latents (k-hot / √k): the binary task vectors span R^M **and** the module
//!   co-occurrence graph (an edge joins two modules active in one task) is connected;
//! - continuous latents (random simplex weights on each support): every module is covered **and**
//!   the co-occurrence graph is connected (the span then holds almost surely).

use std::collections::BTreeSet;
use std::fmt;

use thiserror::Error;

/// Why a task list string is not a valid list for `modules` modules.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TaskListError {
    /// A module index is empty (also an empty task or list) or not a number.
    #[error(
        "task list {text:?}: task {task} has a bad module index {item:?} (expected 0..{modules})"
    )]
    BadIndex {
        /// The whole list.
        text: String,
        /// 0-based task position.
        task: usize,
        /// The offending item.
        item: String,
        /// Modules of the teacher.
        modules: usize,
    },
    /// A module index is out of range.
    #[error("task list {text:?}: module {index} in task {task} is out of range 0..{modules}")]
    OutOfRange {
        /// The whole list.
        text: String,
        /// 0-based task position.
        task: usize,
        /// The index given.
        index: usize,
        /// Modules of the teacher.
        modules: usize,
    },
}

/// The authors' annotation of a task list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Label {
    /// The support identifies the modules.
    Blessed,
    /// It does not (not spanning, or disconnected).
    Doomed,
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Label::Blessed => "blessed",
            Label::Doomed => "doomed",
        })
    }
}

/// A parsed task list: each task is its set of active modules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskList {
    modules: usize,
    tasks: Vec<BTreeSet<usize>>,
}

impl TaskList {
    /// Parses `"0,1;1,2"` for a teacher of `modules` modules (whitespace ignored).
    pub fn parse(text: &str, modules: usize) -> Result<TaskList, TaskListError> {
        let mut tasks = Vec::new();
        for (t, task) in text.split(';').enumerate() {
            let mut set = BTreeSet::new();
            for item in task.split(',') {
                let index: usize = item.trim().parse().map_err(|_| TaskListError::BadIndex {
                    text: text.to_string(),
                    task: t,
                    item: item.trim().to_string(),
                    modules,
                })?;
                if index >= modules {
                    return Err(TaskListError::OutOfRange {
                        text: text.to_string(),
                        task: t,
                        index,
                        modules,
                    });
                }
                set.insert(index);
            }
            tasks.push(set);
        }
        // `split` yields at least one task, and an empty one fails to parse above.
        Ok(TaskList { modules, tasks })
    }

    /// The tasks, each its sorted active modules.
    pub fn tasks(&self) -> impl Iterator<Item = Vec<usize>> + '_ {
        self.tasks.iter().map(|t| t.iter().copied().collect())
    }

    /// Modules of the teacher.
    pub fn modules(&self) -> usize {
        self.modules
    }

    /// Rank over the reals of the tasks' binary (k-hot) vectors.
    pub fn binary_rank(&self) -> usize {
        let mut rows: Vec<Vec<f64>> = self
            .tasks
            .iter()
            .map(|t| {
                (0..self.modules)
                    .map(|m| f64::from(u8::from(t.contains(&m))))
                    .collect()
            })
            .collect();
        let mut rank = 0;
        for col in 0..self.modules {
            let Some(pivot) = (rank..rows.len())
                .max_by(|&a, &b| rows[a][col].abs().total_cmp(&rows[b][col].abs()))
            else {
                break;
            };
            if rows[pivot][col].abs() < 1e-9 {
                continue;
            }
            rows.swap(rank, pivot);
            let pivot_row = rows[rank].clone();
            for (r, row) in rows.iter_mut().enumerate() {
                if r != rank {
                    let f = row[col] / pivot_row[col];
                    for (v, p) in row[col..].iter_mut().zip(&pivot_row[col..]) {
                        *v -= f * p;
                    }
                }
            }
            rank += 1;
        }
        rank
    }

    /// True when every module is active in some task.
    pub fn covers_all(&self) -> bool {
        (0..self.modules).all(|m| self.tasks.iter().any(|t| t.contains(&m)))
    }

    /// Connected components of the co-occurrence graph over all modules (an uncovered module
    /// is a component of its own).
    pub fn components(&self) -> usize {
        let mut parent: Vec<usize> = (0..self.modules).collect();
        fn root(p: &mut [usize], mut x: usize) -> usize {
            while p[x] != x {
                p[x] = p[p[x]];
                x = p[x];
            }
            x
        }
        for t in &self.tasks {
            let mut it = t.iter();
            if let Some(&first) = it.next() {
                for &m in it {
                    let (a, b) = (root(&mut parent, first), root(&mut parent, m));
                    parent[a] = b;
                }
            }
        }
        (0..self.modules)
            .filter(|&m| root(&mut parent, m) == m)
            .count()
    }

    /// The blessed/doomed rule for discrete (`continuous = false`) or continuous latents.
    pub fn label(&self, continuous: bool) -> Label {
        let support = if continuous {
            self.covers_all()
        } else {
            self.binary_rank() == self.modules
        };
        if support && self.components() == 1 {
            Label::Blessed
        } else {
            Label::Doomed
        }
    }
}
