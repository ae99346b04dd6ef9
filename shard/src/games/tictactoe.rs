//! `tictactoe`: the turn-based reference game. Event-driven (`tick_rate_hz = 0`): the
//! shard steps only when an input, a join or a leave arrives. The first two subscribers
//! take X and O; later ones watch. Input `{"cell": 0..=8}`; an input out of turn or onto
//! a taken cell is refused by `authorize_input` and counted, never applied.

use std::sync::Arc;

use bevy_ecs::prelude::*;
use serde::{Deserialize, Serialize};

use crate::game::{Game, JoinRejected, Matchmaking, Subscriber};

/// The tic-tac-toe game type.
#[derive(Debug, Clone, Copy, Default)]
pub struct TicTacToe;

/// No parameters; the struct exists so requests may send `{}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicTacToeParams {}

/// Place the mover's mark on a cell (0 = top left, 8 = bottom right).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    /// The cell index.
    pub cell: u8,
}

/// The board as subscribers see it.
#[derive(Debug, Clone, Serialize)]
pub struct BoardView {
    /// Nine cells: `""`, `"X"` or `"O"`.
    pub board: [&'static str; 9],
    /// Whose turn it is (`"X"` or `"O"`), or `None` once decided.
    pub turn: Option<&'static str>,
    /// The sid seated as X, then as O.
    pub players: [Option<Arc<str>>; 2],
    /// `"X"`, `"O"`, `"draw"`, or `None` while playing.
    pub result: Option<&'static str>,
}

/// The final result.
#[derive(Debug, Clone, Serialize)]
pub struct TicTacToeOutcome {
    /// The winner's sid, `None` on a draw.
    pub winner: Option<Arc<str>>,
    /// `"X"`, `"O"` or `"draw"`.
    pub result: &'static str,
}

#[derive(Resource, Default)]
struct Board {
    cells: [u8; 9],
    seats: [Option<Arc<str>>; 2],
    to_move: u8,
    moves: u8,
    result: Option<u8>,
}

const LINES: [[usize; 3]; 8] =
    [[0, 1, 2], [3, 4, 5], [6, 7, 8], [0, 3, 6], [1, 4, 7], [2, 5, 8], [0, 4, 8], [2, 4, 6]];
const DRAW: u8 = 3;

fn mark(m: u8) -> &'static str {
    match m {
        1 => "X",
        2 => "O",
        DRAW => "draw",
        _ => "",
    }
}

fn judge(mut board: ResMut<Board>) {
    if board.result.is_some() {
        return;
    }
    let cells = board.cells;
    let line = LINES
        .iter()
        .find(|l| cells[l[0]] != 0 && cells[l[0]] == cells[l[1]] && cells[l[1]] == cells[l[2]]);
    if let Some(l) = line {
        board.result = Some(cells[l[0]]);
    } else if board.moves == 9 {
        board.result = Some(DRAW);
    }
}

fn seat_of(board: &Board, sid: &str) -> Option<u8> {
    board.seats.iter().position(|s| s.as_deref() == Some(sid)).map(|i| if i == 0 { 1 } else { 2 })
}

impl Game for TicTacToe {
    type Params = TicTacToeParams;
    type Input = Move;
    type Snapshot = BoardView;
    type Outcome = TicTacToeOutcome;

    const NAME: &'static str = "tictactoe";
    /// Two players a match.
    const MATCHMAKING: Option<Matchmaking> = Some(Matchmaking::fixed(2));

    fn tick_rate_hz(_params: &TicTacToeParams) -> u32 {
        0
    }

    fn setup(_params: &TicTacToeParams, world: &mut World, schedule: &mut Schedule) {
        world.insert_resource(Board { to_move: 1, ..Board::default() });
        schedule.add_systems(judge);
    }

    fn handle_join(world: &mut World, who: &Subscriber) -> Result<Option<Entity>, JoinRejected> {
        let mut board = world.resource_mut::<Board>();
        if seat_of(&board, &who.sid).is_none()
            && let Some(free) = board.seats.iter_mut().find(|s| s.is_none())
        {
            *free = Some(who.sid.clone());
        }
        Ok(None)
    }

    fn handle_leave(_world: &mut World, _who: &Subscriber) {
        // Seats are kept: a player who drops can reconnect and finish the game.
    }

    fn authorize_input(world: &World, who: &Subscriber, input: &Move) -> bool {
        let board = world.resource::<Board>();
        board.result.is_none()
            && seat_of(board, &who.sid) == Some(board.to_move)
            && board.cells.get(usize::from(input.cell)) == Some(&0)
    }

    fn apply_input(world: &mut World, _who: &Subscriber, input: Move) {
        let mut board = world.resource_mut::<Board>();
        let mover = board.to_move;
        if let Some(cell) = board.cells.get_mut(usize::from(input.cell)) {
            *cell = mover;
            board.moves += 1;
            board.to_move = 3 - mover;
        }
    }

    fn snapshot(world: &mut World) -> BoardView {
        let board = world.resource::<Board>();
        BoardView {
            board: board.cells.map(mark),
            turn: board.result.is_none().then(|| mark(board.to_move)),
            players: board.seats.clone(),
            result: board.result.map(mark),
        }
    }

    fn outcome(world: &mut World) -> Option<TicTacToeOutcome> {
        let board = world.resource::<Board>();
        let result = board.result?;
        let winner = match result {
            1 | 2 => board.seats[usize::from(result - 1)].clone(),
            _ => None,
        };
        Some(TicTacToeOutcome { winner, result: mark(result) })
    }
}
